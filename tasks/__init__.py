"""Thin Prefect tasks over ``recmodel`` (models) and ``store`` (the warehouse).

A task is the decorated library function itself where nothing needs adding (``task.fn`` is that
function); otherwise its body is a few lines. Tasks pass paths and small typed records, never frames.
"""
