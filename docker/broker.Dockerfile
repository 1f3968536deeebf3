# The broker image: no libtorch, so it builds in a minute and ships small.
# Holds mmgen-broker, the mmgen CLI and mmgen-echo.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config libzmq3-dev cppzmq-dev libmsgpack-cxx-dev \
      libsqlite3-dev libcpp-httplib-dev libgtest-dev libgmock-dev && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -G Ninja -S /src -B /build -DMMGEN_WITH_TORCH=OFF -DBUILD_TESTING=OFF \
      -DCMAKE_BUILD_TYPE=Release && cmake --build /build --target mmgen-broker mmgen mmgen-echo

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libzmq5 libsqlite3-0 curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/mmgen-broker /build/bin/mmgen /build/bin/mmgen-echo /usr/local/bin/
EXPOSE 5555 5556 5557
CMD ["mmgen-broker", "--clients", "tcp://0.0.0.0:5555", "--workers", "tcp://0.0.0.0:5556", "--data", "/data"]
