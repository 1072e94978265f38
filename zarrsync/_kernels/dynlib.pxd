# System shared libraries opened at run time by their documented soname
# (libzstd): no headers or link step at build time.
cdef extern from *:
    """
    #if defined(_WIN32)
    #include <windows.h>
    static CYTHON_INLINE void* zs_dlopen(const char* name) { return (void*)LoadLibraryA(name); }
    static CYTHON_INLINE void* zs_dlsym(void* lib, const char* symbol) {
        return (void*)GetProcAddress((HMODULE)lib, symbol);
    }
    #else
    #include <dlfcn.h>
    static CYTHON_INLINE void* zs_dlopen(const char* name) {
        return dlopen(name, RTLD_NOW | RTLD_LOCAL);
    }
    static CYTHON_INLINE void* zs_dlsym(void* lib, const char* symbol) {
        return dlsym(lib, symbol);
    }
    #endif
    """
    void* zs_dlopen(const char* name) nogil
    void* zs_dlsym(void* lib, const char* symbol) nogil


cdef inline bint open_symbols(soname, tuple symbols, void** found) except -1:
    # Open the library ``soname`` and look every one of ``symbols`` up into
    # ``found``; False if it cannot be opened or lacks one. The handle stays
    # open: the functions are used for the life of the process.
    encoded = str(soname).encode()
    cdef void* lib = zs_dlopen(encoded)
    if lib == NULL:
        return False
    for k, symbol in enumerate(symbols):
        found[k] = zs_dlsym(lib, symbol)
        if found[k] == NULL:
            return False
    return True
