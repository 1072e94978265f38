"""Error messages say what was expected and what was found (grammar included)."""

import pytest

import zarrsync as zs
from zarrsync.codecs import Bytes, Gzip, Transpose, from_dict


@pytest.fixture
def store():
    store = zs.MemoryStore()
    store.create_array(zs.ArrayNode.of_path("/g/a"), shape=(4, 4), chunks=(2, 2), dtype="int8")
    store.create_group(zs.GroupNode.of_path("/g/h"))
    return store


def test_rename_onto_an_array_says_an_array(store):
    store.create_array(zs.ArrayNode.of_path("/g/b"), shape=(1,), chunks=(1,), dtype="int8")
    with pytest.raises(zs.NodeExists, match="^cannot rename /g/b: an array already exists "
                                            "at /g/a$"):
        store.rename_array(zs.ArrayNode.of_path("/g/b"), "a")
    with pytest.raises(zs.NodeExists, match="a group already exists at /g/h$"):
        store.rename_array(zs.ArrayNode.of_path("/g/b"), "h")


def test_create_over_an_array_says_an_array(store):
    with pytest.raises(zs.NodeExists, match="an array already exists"):
        store.create_array(zs.ArrayNode.of_path("/g/a"), shape=(1,), chunks=(1,), dtype="int8")
    with pytest.raises(zs.NodeExists, match="an array at /g/a already exists"):
        store.create_group(zs.GroupNode.of_path("/g/a"))


def test_resize_messages_give_expected_and_got(store):
    node = zs.ArrayNode.of_path("/g/a")
    with pytest.raises(zs.InvalidResizeShape, match=r"expected 2 dimensions .*, got 1"):
        store.reshape(node, (3,))
    with pytest.raises(zs.InvalidResizeShape, match=r"to \(3, -1\): sizes must be >= 0"):
        store.reshape(node, (3, -1))


def test_selection_messages_give_expected_and_got(store):
    node = zs.ArrayNode.of_path("/g/a")
    with pytest.raises(zs.InvalidArraySlice, match="the array has 2 dimensions, the "
                                                   "selection indexes 3"):
        store.read_array(node, (0, 0, 0))
    with pytest.raises(zs.InvalidArraySlice, match="expected an int, a slice.*got 'x'"):
        store.read_array(node, ("x",))
    with pytest.raises(zs.InvalidArraySlice, match="at most one Ellipsis, got 2"):
        store.read_array(node, (..., ...))


@pytest.mark.parametrize("doc, message", [
    ({"name": "gzip", "configuration": {"level": 1, "lvl": 2}},
     r"unknown gzip configuration fields \['lvl'\]; expected only level"),
    ({"name": "gzip", "configuration": {}}, "needs a 'level'"),
    ({"name": "zstd", "configuration": {"levle": 1}}, "expected level, checksum"),
    ({"name": "bytes", "configuration": {"endian": "little", "x": 1}}, "expected only endian"),
    ({"name": "crc32c", "configuration": {"x": 1}}, "crc32c takes no configuration"),
    ({"name": "transpose", "configuration": {}}, "needs an 'order'"),
    ({"name": "gzip", "configuration": [1]}, r"must be an object, got \[1\]"),
])
def test_codec_configuration_messages_name_the_expected_fields(doc, message):
    with pytest.raises(zs.CodecError, match=message):
        from_dict(doc)


def test_codec_ordering_message_gives_the_expected_order(store):
    node = zs.ArrayNode.of_path("/o")
    with pytest.raises(zs.InvalidCodecOrdering, match="expected the order array->array\\*"):
        store.create_array(node, shape=(2, 2), chunks=(2, 2), dtype="int8",
                           codecs=[Bytes(), Transpose((1, 0))])
    with pytest.raises(zs.InvalidCodecOrdering, match="before the array->bytes codec"):
        store.create_array(node, shape=(2, 2), chunks=(2, 2), dtype="int8",
                           codecs=[Gzip(), Bytes()])
    with pytest.raises(zs.CodecError, match="a codec must be an object with a 'name', got 5"):
        store.create_array(node, shape=(2, 2), chunks=(2, 2), dtype="int8", codecs=[Bytes(), 5])
