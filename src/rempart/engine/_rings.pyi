"""Types of the C ring arithmetic (`_rings.c`); its reference is `rempart.engine.windows.RingSlab`."""

from array import array

def bump(
    cells: array[int],
    epochs: array[int],
    slot: int,
    bucket: int,
    first: int,
    second: int,
    size: int,
    kinds: int,
    /,
) -> None: ...
def add(
    cells: array[int],
    epochs: array[int],
    slot: int,
    kind: int,
    bucket: int,
    amount: int,
    size: int,
    kinds: int,
    /,
) -> None: ...
def total(
    cells: array[int],
    epochs: array[int],
    slot: int,
    kind: int,
    span: int,
    bucket: int,
    size: int,
    kinds: int,
    /,
) -> int: ...
