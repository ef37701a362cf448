#!/usr/bin/env bash
# The GPU checks of the StyleGAN fast path in one go, for a session lent a GPU machine:
#     run(command="bash tools/gpu_check.sh", timeout_s=540)
# It uses that machine's own python3 (CUDA torch, numpy, safetensors, pytest) with perform
# from the working tree; logs land in $OUT. About 5 minutes on an H100.
set -o pipefail
out=${OUT:-/tmp}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__)'
# --noconftest: the shared fixtures need the show's network packages, absent there
python3 -m pytest -q --noconftest -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/cuda_tests.log"
python3 tools/bench_stylegan.py --device cuda --frames 300 --sizes 256 512 1024 \
    --precisions fp32 mixed fp16 2>&1 | tee "$out/bench_sg2.log"
python3 tools/bench_stylegan.py --device cuda --frames 100 --sizes 512 1024 --stylegan3 t \
    --precisions fp32 fp16 2>&1 | tee "$out/bench_sg3.log"
