/* clones.h — DN_CLONES_AVX2: compile a loop twice, for x86-64-v3 (AVX2, FMA) and for the
 * baseline, and let the loader pick one by the CPU (GCC's target_clones, an ifunc).
 *
 * ThreadSanitizer and fuzzing builds define DN_NO_TARGET_CLONES (CMakeLists.txt): the
 * clones' ifunc resolver runs before TSan's runtime is ready and crashes at start-up, so
 * there the macro is empty and the function is the baseline clone's code. A kernel that uses
 * it must give the same bits in both clones, or say where it does not. */
#ifndef DN_RUNTIME_CLONES_H
#define DN_RUNTIME_CLONES_H

#if defined(__SANITIZE_THREAD__) && !defined(DN_NO_TARGET_CLONES)
#define DN_NO_TARGET_CLONES /* GCC's -fsanitize=thread, even without CMake's option */
#endif
#ifdef DN_NO_TARGET_CLONES
#define DN_CLONES_AVX2
#else
#define DN_CLONES_AVX2 __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif

#endif
