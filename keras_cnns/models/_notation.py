"""A compact per-stage block notation, decoded into :class:`~keras_cnns.models._stages.StageSpec`.

After timm's ``_efficientnet_builder._decode_block_str`` (Wightman, pytorch-image-models): a
stage is written as one string of ``_``-separated fields, the block kind first, e.g.
``"ir_r2_k3_s2_e6_c24"``: kind ``ir`` (inverted residual), ``r2`` two blocks, ``k3`` a 3x3
depthwise kernel, ``s2`` the first block strides by 2, ``e6`` expansion 6, ``c24`` 24 output
channels. Fields:

=====  ===========================================  =========================
field  meaning                                      StageSpec
=====  ===========================================  =========================
``r``  repeats (blocks in the stage), required       ``blocks``
``c``  output channels, required                     ``filters``
``s``  stride of the stage's first block (1)         ``stride``
``k``  depthwise kernel size                         ``options["kernel_size"]``
``e``  expansion factor (may be fractional: ``e2.3``)    ``options["expansion"]``
``se`` squeeze-and-excitation ratio (``se0.25``)       ``options["se_ratio"]``
``g``  groups of the 1x1 convolutions + shuffle (g2)  ``options["pw_groups"]``
``n``  activation: ``nre`` ReLU, ``nr6`` ReLU6,        ``options["activation"]``
       ``nhs`` hard-swish, ``nsw`` swish
=====  ===========================================  =========================

Kinds: ``ir`` -> ``"inverted_residual"``. Unknown kinds, fields or malformed values are a
``ValueError`` naming the string.
"""

from __future__ import annotations

import re
from typing import Sequence, Tuple

from keras_cnns._checks import fail
from keras_cnns.models._stages import StageSpec

__all__ = ["ACTIVATIONS", "BLOCK_KINDS", "decode_stage", "decode_stages"]

#: notation kind -> block kind of the stage builder's block mapping.
BLOCK_KINDS = {"ir": "inverted_residual"}
_FIELDS = {"r": ("blocks", int), "c": ("filters", int), "s": ("stride", int),
           "k": ("kernel_size", int), "e": ("expansion", float), "se": ("se_ratio", float),
           "g": ("pw_groups", int)}
_FLOAT_OK = ("e", "se")
ACTIVATIONS = {"re": "relu", "r6": "relu6", "hs": "hard_swish", "sw": "swish"}
_FIELD = re.compile(r"^(se|[a-z])(\d+(?:\.\d+)?)$")


def decode_stage(text: str) -> StageSpec:
    """One stage string (``"ir_r2_k3_s2_e6_c24"``) -> :class:`StageSpec`."""
    if not isinstance(text, str) or not text:
        fail("stage", "must be a block string such as 'ir_r2_k3_s2_e6_c24'", text)
    kind, *fields = text.split("_")
    if kind not in BLOCK_KINDS:
        fail("stage", f"must start with a block kind from {sorted(BLOCK_KINDS)} (in {text!r})",
             text)
    spec, options = {}, {}
    for field in fields:
        if field.startswith("n") and field[1:] in ACTIVATIONS:
            if "activation" in options:
                fail("stage", f"sets 'n' twice in {text!r}", text)
            options["activation"] = ACTIVATIONS[field[1:]]
            continue
        m = _FIELD.match(field)
        if m is None or m.group(1) not in _FIELDS or ("." in m.group(2)
                                                      and m.group(1) not in _FLOAT_OK):
            fail("stage", f"has a malformed field {field!r} (fields: r, c, s, k <int>, e, se "
                          f"<number>, n{{{','.join(ACTIVATIONS)}}}) in {text!r}", text)
        key, cast = _FIELDS[m.group(1)]
        target = spec if key in ("blocks", "filters", "stride") else options
        if key in target:
            fail("stage", f"sets {m.group(1)!r} twice in {text!r}", text)
        value = cast(m.group(2))
        target[key] = int(value) if key == "expansion" and value == int(value) else value
    for required in ("r", "c"):
        if _FIELDS[required][0] not in spec:
            fail("stage", f"needs the field {required!r}<int> (in {text!r})", text)
    return StageSpec(BLOCK_KINDS[kind], options=options, **spec)


def decode_stages(texts: Sequence[str]) -> Tuple[StageSpec, ...]:
    """A sequence of stage strings -> a tuple of :class:`StageSpec`."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        fail("stages", "must be a non-empty sequence of block strings", texts)
    return tuple(decode_stage(t) for t in texts)
