"""Which images netbed built, told apart from images built FROM them.

A Docker image inherits its parent's labels, so a user's image built FROM netbed/base
(or netbed/server) carries every netbed label. A label that only says "netbed's" cannot
tell the two apart; what a child cannot inherit is its own name. So each image netbed
builds carries `io.netbed.image=<its own repository>` (netbed/client, netbed/router,
netbed/server, netbed/base), and an image is netbed's only when:

- tagged: every tag is in that one repository, the label's. A child tagged myorg/app, or
  even netbed/server:mine FROM netbed/base (label netbed/base), is not;
- untagged (an earlier build a rebuild replaced): the label names a netbed repository and
  was not inherited, i.e. no image with the same label value holds a strict prefix of its
  layers (its parent would).

Images from before the label held a name say `true`: tagged ones in netbed's repositories
are still netbed's; untagged ones cannot be told from a child and are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

LABEL_IMAGE = "io.netbed.image"
#: The repositories of the images netbed builds (host images and the bootstrapped base).
IMAGE_REPOSITORIES = ("netbed/client", "netbed/router", "netbed/server", "netbed/base")
#: What images built before the label named the repository carry.
_LEGACY_VALUE = "true"


def repository(tag: str) -> str:
    """`netbed/client` of `netbed/client:ci` (a registry port's colon is not a tag's)."""
    name, sep, last = tag.rpartition(":")
    return name if sep and "/" not in last else tag


def _labels(image: Any) -> dict[str, str]:
    return dict(getattr(image, "labels", None) or {})


def _layers(image: Any) -> tuple[str, ...]:
    return tuple(((getattr(image, "attrs", None) or {}).get("RootFS") or {}).get("Layers") or ())


def _inherited(image: Any, same_label: Iterable[Any]) -> bool:
    """True when another image with the same label value is a strict layer prefix of `image`."""
    layers = _layers(image)
    for other in same_label:
        theirs = _layers(other)
        if other is not image and theirs and len(theirs) < len(layers) and layers[:len(theirs)] == theirs:
            return True
    return False


def built_by_netbed(image: Any, labelled: Iterable[Any] = ()) -> bool:
    """Whether netbed built `image`; `labelled`: every image carrying LABEL_IMAGE (to find
    the parent an untagged image may have inherited its label from)."""
    own = _labels(image).get(LABEL_IMAGE)
    tags = list(getattr(image, "tags", None) or [])
    if tags:
        repos = {repository(tag) for tag in tags}
        if own == _LEGACY_VALUE:
            return repos <= set(IMAGE_REPOSITORIES)
        return own in IMAGE_REPOSITORIES and repos == {own}
    if own not in IMAGE_REPOSITORIES:
        return False
    return not _inherited(image, [o for o in labelled if _labels(o).get(LABEL_IMAGE) == own])


def select(images: list[Any]) -> list[Any]:
    """The images among `images` (all those carrying netbed's labels) that netbed built."""
    return [image for image in images if built_by_netbed(image, images)]
