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
