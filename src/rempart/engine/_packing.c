/* The byte work of counter checkpoints in C: rows gathered from a slab, sections as zero runs.
 *
 * The compiled counterpart of rempart/engine/packing.py (the reference, and the fallback where
 * nothing compiles); both give the same bytes and refuse the same input with the same message.
 *
 * `gather_rows(source, row_bytes, slots)`: the rows `slots` (native int64) of `source`, end to
 * end; one memcpy a row where the Python loop paid a slice, an array and an extend.
 * `squeeze(data)`: `data` as zero runs (records of a LEB128 literal length, the literal, and
 * the LEB128 length of the zero bytes after it; zero runs under 3 bytes stay in the literal).
 * `expand(stored, size)`: the `size` bytes back, or ValueError. Both hold the buffers they were
 * given and let other threads run while they scan: the checkpoint's writer thread calls them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MIN_RUN 3
#define MAX_VARINT 9 /* bytes: 63 bits, more than any length a buffer has */

static PyObject *
gather_rows(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "gather_rows(source, row_bytes, slots)");
        return NULL;
    }
    Py_ssize_t row_bytes = PyLong_AsSsize_t(args[1]);
    if (row_bytes == -1 && PyErr_Occurred())
        return NULL;
    if (row_bytes <= 0) {
        PyErr_Format(PyExc_ValueError, "rows of %zd bytes", row_bytes);
        return NULL;
    }
    Py_buffer source, slots;
    if (PyObject_GetBuffer(args[0], &source, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &slots, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&source);
        return NULL;
    }
    PyObject *result = NULL;
    if (source.len % row_bytes != 0) {
        PyErr_Format(PyExc_ValueError, "a slab of %zd bytes is not a whole number of %zd-byte rows",
                     source.len, row_bytes);
        goto done;
    }
    if (slots.len % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "the slots are not whole 8-byte numbers");
        goto done;
    }
    Py_ssize_t rows = source.len / row_bytes, count = slots.len / 8;
    if (count > PY_SSIZE_T_MAX / row_bytes) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, count * row_bytes);
    if (result == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(result);
    const char *from = (const char *)source.buf;
    const char *slot_bytes = (const char *)slots.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t slot;
        memcpy(&slot, slot_bytes + 8 * i, 8);
        if (slot < 0 || slot >= rows) {
            PyErr_Format(PyExc_ValueError, "slot %lld outside a slab of %zd rows", (long long)slot,
                         rows);
            Py_CLEAR(result);
            goto done;
        }
        memcpy(out + i * row_bytes, from + slot * row_bytes, (size_t)row_bytes);
    }
done:
    PyBuffer_Release(&slots);
    PyBuffer_Release(&source);
    return result;
}

static inline uint8_t *
put_varint(uint8_t *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    *out++ = (uint8_t)value;
    return out;
}

/* Where the zero run that starts at `at` ends. */
static inline Py_ssize_t
zeros_end(const uint8_t *data, Py_ssize_t at, Py_ssize_t n)
{
    while (at + 8 <= n) {
        uint64_t word;
        memcpy(&word, data + at, 8);
        if (word != 0)
            break;
        at += 8;
    }
    while (at < n && data[at] == 0)
        at++;
    return at;
}

static PyObject *
squeeze(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t n = view.len;
    /* A record of a literal of L bytes and Z >= 3 zeros takes at most L + Z bytes, plus one
     * for each literal of 16 KiB or more; the last one at most 11 more than its literal. */
    Py_ssize_t bound = n + n / 2048 + 16;
    PyObject *result = PyBytes_FromStringAndSize(NULL, bound);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const uint8_t *data = (const uint8_t *)view.buf;
    uint8_t *start = (uint8_t *)PyBytes_AS_STRING(result), *out = start;
    Py_BEGIN_ALLOW_THREADS;
    Py_ssize_t at = 0, i = 0; /* at: the first byte not yet stored */
    while (i < n) {
        if (data[i] != 0) {
            i++;
            continue;
        }
        Py_ssize_t run = i;
        i = zeros_end(data, i, n);
        if (i - run >= MIN_RUN) {
            out = put_varint(out, (uint64_t)(run - at));
            memcpy(out, data + at, (size_t)(run - at));
            out += run - at;
            out = put_varint(out, (uint64_t)(i - run));
            at = i;
        }
    }
    if (at < n) {
        out = put_varint(out, (uint64_t)(n - at));
        memcpy(out, data + at, (size_t)(n - at));
        out += n - at;
        *out++ = 0;
    }
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&view);
    if (_PyBytes_Resize(&result, out - start) < 0)
        return NULL;
    return result;
}

enum expand_error { EXPANDED, CUT_SHORT, LONG_VARINT, TOO_MANY, TOO_FEW };

/* The LEB128 number at `*at`; 0 and an error in `*error` when there is none. */
static inline uint64_t
get_varint(const uint8_t *data, Py_ssize_t n, Py_ssize_t *at, enum expand_error *error)
{
    uint64_t value = 0;
    for (int shift = 0, read = 0;; shift += 7) {
        if (*at >= n) {
            *error = CUT_SHORT;
            return 0;
        }
        if (read == MAX_VARINT) {
            *error = LONG_VARINT;
            return 0;
        }
        uint8_t byte = data[(*at)++];
        read++;
        value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return value;
    }
}

static PyObject *
expand(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expand(stored, size)");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0) {
        PyErr_Format(PyExc_ValueError, "a size of %zd bytes", size);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const uint8_t *data = (const uint8_t *)view.buf;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    Py_ssize_t n = view.len, at = 0, filled = 0;
    enum expand_error error = EXPANDED;
    Py_BEGIN_ALLOW_THREADS;
    while (at < n) {
        uint64_t literal = get_varint(data, n, &at, &error);
        if (error)
            break;
        if (literal > (uint64_t)(size - filled)) {
            error = TOO_MANY;
            break;
        }
        if (literal > (uint64_t)(n - at)) {
            error = CUT_SHORT;
            break;
        }
        memcpy(out + filled, data + at, (size_t)literal);
        filled += (Py_ssize_t)literal;
        at += (Py_ssize_t)literal;
        uint64_t zeros = get_varint(data, n, &at, &error);
        if (error)
            break;
        if (zeros > (uint64_t)(size - filled)) {
            error = TOO_MANY;
            break;
        }
        memset(out + filled, 0, (size_t)zeros);
        filled += (Py_ssize_t)zeros;
    }
    if (!error && filled != size)
        error = TOO_FEW;
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&view);
    switch (error) {
    case EXPANDED:
        return result;
    case CUT_SHORT:
        PyErr_SetString(PyExc_ValueError, "the stored bytes end inside a record");
        break;
    case LONG_VARINT:
        PyErr_SetString(PyExc_ValueError, "a length of more than 9 bytes");
        break;
    case TOO_MANY:
        PyErr_Format(PyExc_ValueError, "more than the %zd bytes it should hold", size);
        break;
    case TOO_FEW:
        PyErr_Format(PyExc_ValueError, "%zd bytes where %zd should be", filled, size);
        break;
    }
    Py_DECREF(result);
    return NULL;
}

static PyMethodDef packing_methods[] = {
    {"gather_rows", (PyCFunction)(void (*)(void))gather_rows, METH_FASTCALL,
     "gather_rows(source, row_bytes, slots): the rows `slots` (int64) of `source`, end to end."},
    {"squeeze", (PyCFunction)squeeze, METH_O, "squeeze(data): `data` stored as zero runs."},
    {"expand", (PyCFunction)(void (*)(void))expand, METH_FASTCALL,
     "expand(stored, size): the `size` bytes that `squeeze` stored; ValueError otherwise."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef packing_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rempart.engine._packing",
    .m_doc = PyDoc_STR("Counter checkpoints' byte work in C (see rempart/engine/packing.py)."),
    .m_size = -1,
    .m_methods = packing_methods,
};

PyMODINIT_FUNC
PyInit__packing(void)
{
    return PyModule_Create(&packing_module);
}
