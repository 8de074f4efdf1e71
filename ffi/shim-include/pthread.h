#ifndef CORTEX_SHIM_PTHREAD_H
#define CORTEX_SHIM_PTHREAD_H
/* glibc's pthread_mutex_t is 40 bytes on LP64 and a static initializer is all zeros. */
typedef union { char size[40]; long align; } pthread_mutex_t;
#define PTHREAD_MUTEX_INITIALIZER { { 0 } }
int pthread_mutex_lock(pthread_mutex_t * m);
int pthread_mutex_unlock(pthread_mutex_t * m);
#endif
