# beamgate: the SSH gateway in a container.
#
#   docker build -t beamgate .
#   docker run -d --name beamgate -p 2222:2222 \
#     -v /srv/beamgate/etc:/etc/beamgate:ro \
#     -v /srv/beamgate/state:/var/lib/beamgate \
#     beamgate
#
# /etc/beamgate (read-only) holds beamgate.toml, the cluster cookie file(s)
# (mode 0400 or 0600, owned by uid 10001) and the SSH host key (mode 0600,
# uid 10001); /var/lib/beamgate holds recordings, the audit log and the
# recording signing key. Nothing secret is baked into the image. See README.md.
FROM python:3.11-slim

RUN groupadd --system --gid 10001 beamgate \
 && useradd --system --uid 10001 --gid beamgate --home-dir /var/lib/beamgate --no-create-home \
      --shell /usr/sbin/nologin beamgate

WORKDIR /opt/beamgate
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY commands ./commands
COPY policies ./policies
RUN pip install --no-cache-dir . \
 && rm -rf /opt/beamgate/build /root/.cache

RUN mkdir -p /etc/beamgate /var/lib/beamgate \
 && chown beamgate:beamgate /var/lib/beamgate \
 && chmod 0700 /var/lib/beamgate
VOLUME ["/etc/beamgate", "/var/lib/beamgate"]

USER beamgate
WORKDIR /var/lib/beamgate
EXPOSE 2222
ENTRYPOINT ["beamgate", "serve"]
CMD ["--config", "/etc/beamgate/beamgate.toml"]
