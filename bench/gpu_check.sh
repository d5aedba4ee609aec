#!/usr/bin/env bash
# One prepared GPU check (issue 4): GPU tests, then scoring and training at ML-25M shape on the device,
# each next to its CPU baseline measured in the same script. Run from the repository root on a CUDA
# machine with the venv set up (`make install TORCH=torch`); output goes to stdout (and $OUT if set).
set -euo pipefail
PY=${PY:-.venv/bin/python}
log() { echo "== $*"; }
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
log "GPU tests"
"$PY" -m pytest -q -m gpu tests/test_gpu.py
log "scoring on the GPU (floor: torch.mm on the GPU)"
"$PY" bench/scoring.py --device cuda --repeat 3
log "training on the GPU"
"$PY" bench/training.py --device cuda --epochs 5 --baseline-ratings 20000
