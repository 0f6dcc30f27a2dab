/* SPDX-License-Identifier: MIT */
/*
 * How tests/lib reports a failed check, private to its .c files: built into the unit tests (FAKE_VMM_CMOCKA
 * defined) a cmocka assertion, built into a fuzz target the place printed and an abort (so the fuzzer keeps
 * the input).
 */
#ifndef KILN_TESTS_LIB_FAKE_CHECK_H
#define KILN_TESTS_LIB_FAKE_CHECK_H

#ifdef FAKE_VMM_CMOCKA
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#define FAKE_VMM_CHECK(cond) assert_true(cond)
#else
#include "fuzz_common.h" /* tests/fuzz: CHECK prints the place and aborts */
#define FAKE_VMM_CHECK(cond) CHECK(cond)
#endif

#endif
