#ifndef CORTEX_SHIM_STRING_H
#define CORTEX_SHIM_STRING_H
#include <stddef.h>
void * memcpy(void * dst, const void * src, size_t n);
void * memmove(void * dst, const void * src, size_t n);
size_t strlen(const char * s);
#endif
