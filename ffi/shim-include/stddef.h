/* Minimal libc stand-ins so ffi/shim.c compiles with -nostdinc: the shim must
   build on machines without C development headers (x86-64/aarch64 LP64). */
#ifndef CORTEX_SHIM_STDDEF_H
#define CORTEX_SHIM_STDDEF_H
typedef unsigned long size_t;
typedef long ptrdiff_t;
#ifndef NULL
#define NULL ((void *)0)
#endif
#define offsetof(type, member) ((size_t) & ((type *)0)->member)
#endif
