# The qtap-fluent agent image used by `qtap-fluent gen --target kubernetes` (--image).
#   docker build -t qtap-fluent:0.1.0 .
# bcc comes from Debian's python3-bpfcc (never the unrelated PyPI package named bcc); the venv
# sees it through --system-site-packages. Kernel headers are mounted from the node at run time.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-bpfcc ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN python3 -m venv --system-site-packages /opt/qtap-fluent \
 && /opt/qtap-fluent/bin/pip install --no-cache-dir '/src[aws]' \
 && rm -rf /src
ENV PATH=/opt/qtap-fluent/bin:$PATH
ENTRYPOINT ["qtap-fluent"]
CMD ["--help"]
