# The model-worker image: mmgen-text, mmgen-image, mmgen-video and the CLI
# (for healthchecks), linked against the pinned PyPI libtorch (CUDA 13 build)
# and running on the NVIDIA container runtime.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config python3 python3-venv python3-pip \
      libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libsqlite3-dev libcpp-httplib-dev \
      libgtest-dev libgmock-dev libopencv-dev libavcodec-dev libavformat-dev libavutil-dev \
      libswscale-dev libpcre2-dev libsentencepiece-dev && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /src/requirements.txt
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r /src/requirements.txt
COPY . /src
RUN cmake -G Ninja -S /src -B /build -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$(/opt/venv/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" \
    && cmake --build /build

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libzmq5 libsqlite3-0 libgomp1 libopencv-imgcodecs406 libopencv-imgproc406 libavcodec59 \
      libavformat59 libavutil57 libswscale6 libpcre2-8-0 libsentencepiece0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY --from=build /build/bin/ /usr/local/bin/
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
