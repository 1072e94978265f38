# Shared libraries opened at run time (libzstd, libdeflate): no headers or
# link step at build time.
cdef extern from *:
    """
    #if defined(_WIN32)
    #include <windows.h>
    static CYTHON_INLINE void* zs_dlopen(const char* path) { return (void*)LoadLibraryA(path); }
    static CYTHON_INLINE void* zs_dlsym(void* lib, const char* name) {
        return (void*)GetProcAddress((HMODULE)lib, name);
    }
    #else
    #include <dlfcn.h>
    static CYTHON_INLINE void* zs_dlopen(const char* path) {
        return dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    static CYTHON_INLINE void* zs_dlsym(void* lib, const char* name) { return dlsym(lib, name); }
    #endif
    """
    void* zs_dlopen(const char* path) nogil
    void* zs_dlsym(void* lib, const char* name) nogil


cdef inline bint open_symbols(path, tuple names, void** found) except -1:
    # Open the shared library at ``path`` and look every one of ``names`` up
    # into ``found``; False if it cannot be opened or lacks one. The handle
    # stays open: closing a library is never needed here.
    encoded = str(path).encode()
    cdef void* lib = zs_dlopen(encoded)
    if lib == NULL:
        return False
    for k, name in enumerate(names):
        found[k] = zs_dlsym(lib, name)
        if found[k] == NULL:
            return False
    return True
