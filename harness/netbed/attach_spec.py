"""`netbed up --attach HOST=IMAGE[:CMD]`: parsing the spec and starting it with the testbed.

IMAGE may carry a tag (and a registry port), so the colon before CMD is ambiguous:
`app:1:python3 -m http.server` is image app:1 with a command, `app:python3 -m x` is
image app with one. The image must be on the machine anyway (netbed never pulls), so
the split chosen is the one whose image exists, the longest if several do. CMD is split
into words like a shell would (shlex) but never run by one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from . import attach, docker_api
from .errors import AttachError, ImageNotLocal
from .testbed import Testbed

#: The hosts an image can be attached to.
HOSTS = ("client", "router", "server")
#: A Docker image reference: no whitespace, no leading punctuation.
_REFERENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


@dataclass(frozen=True)
class AttachSpec:
    """One `--attach`: which host, which local image, which command (None: the image's CMD)."""

    host: str
    image: str
    command: tuple[str, ...] | None

    @property
    def name(self) -> str:
        """The attachment's name (container `INSTANCE-HOST-NAME`): one per image and host, so
        a second `netbed up --attach` replaces it rather than adding another."""
        return re.sub(r"[^A-Za-z0-9_.-]", "-", self.image).strip("-.")[:63]


def parse(text: str, have_image: Callable[[str], bool]) -> AttachSpec:
    """`HOST=IMAGE[:CMD]` -> AttachSpec; `have_image(ref)`: whether the engine has that image."""
    host, sep, rest = text.partition("=")
    if not sep or host not in HOSTS or not rest:
        raise AttachError(f"bad --attach {text!r}: expected HOST=IMAGE[:CMD] with HOST one of {', '.join(HOSTS)}, "
                          "e.g. server=myapp:1 or 'server=myapp:1:python3 -m http.server 8080'")
    candidates = [(rest, "")] + [(rest[:i], rest[i + 1:]) for i, ch in enumerate(rest) if ch == ":"]
    valid = [(image, cmd) for image, cmd in candidates if _REFERENCE_RE.match(image)]
    for image, cmd in sorted(valid, key=lambda pair: -len(pair[0])):
        if have_image(image):
            try:
                words = shlex.split(cmd)
            except ValueError as exc:
                raise AttachError(f"bad --attach {text!r}: its command {cmd!r}: {exc}") from None
            return AttachSpec(host, image, tuple(words) if words else None)
    tried = ", ".join(repr(image) for image, _ in valid) or repr(rest)
    raise ImageNotLocal(f"--attach {text!r}: no image on this machine is named {tried}; build it "
                        "(`docker build -t NAME DIR`) or load it (`docker load -i FILE`) first; netbed never pulls")


def start(testbed: Testbed, spec: AttachSpec) -> str:
    """Start `spec` on the running testbed, owned by the testbed (removed by `netbed down`),
    replacing an attachment of the same image on the same host; returns its container name."""
    host = testbed.host(spec.host)
    for container in testbed.docker.containers.list(all=True, ignore_removed=True, filters={
            "label": [f"{docker_api.LABEL_INSTANCE}={testbed.instance}", f"{attach.LABEL_ATTACHMENT}={spec.host}"],
            "name": f"^/?{re.escape(f'{testbed.instance}-{spec.host}-{spec.name}')}$"}):
        container.remove(force=True, v=True)
    attachment = attach.start(host, spec.image, spec.command, name=spec.name, owner="")
    host.untrack_attachment(attachment)  # the testbed's, not this command's to stop
    return attachment.name
