# A chunk decoder that runs without the GIL, so that one call can decode
# many chunks (``ChunkPlan.gather_decoded_many``) instead of crossing into
# Python once per chunk. A decoder object (``zstd.DContext``,
# ``deflate.Inflater``) embeds one ``RawDecoder`` and hands out its address
# in a capsule named ``RAW_DECODER_CAPSULE`` (``raw_decoder()``); the
# address stays valid while the object lives.

# Decode ``src[:n]`` into ``dst[:capacity]``: the number of bytes written,
# or -1 for anything the Python path must look at (damaged data, a form
# this decoder does not take, too little room).
ctypedef Py_ssize_t (*raw_decode_fn)(void* state, const void* src, size_t n, void* dst,
                                     size_t capacity) noexcept nogil

ctypedef struct RawDecoder:
    raw_decode_fn decode
    void* state

cdef extern from *:
    """
    #define ZS_RAW_DECODER_CAPSULE "zarrsync.raw_decoder"
    """
    const char* RAW_DECODER_CAPSULE "ZS_RAW_DECODER_CAPSULE"
