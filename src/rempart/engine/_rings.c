/* The counter rings' per-report arithmetic in C, on the arrays a `RingSlab` owns.
 *
 * The compiled counterpart of rempart/engine/windows.py's `RingSlab.bump`, `add` and `total`
 * (the reference, and the fallback where nothing compiles): each function takes the slab's
 * `cells` (array "H") and `epochs` (array "q") and its shape, and reads and writes them exactly
 * as the Python methods do, advancing a slot's ring the same way (`_advance`). Compiled by mypyc,
 * the Python methods index the arrays through the generic item protocol, an int object per
 * read and write: about 0.3 us a report's bump; here the cells are plain uint16_t.
 *
 * Every slot, kind and bucket is checked against the buffers before they are touched: a bad
 * argument raises (IndexError, ValueError), never reads or writes outside the arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define CEILING 0xFFFF

typedef struct {
    Py_buffer cells_view, epochs_view;
    uint16_t *cells;
    int64_t *epochs;
    Py_ssize_t size, kinds, stride, base;
    int64_t epoch;
} Ring;

/* Python's floor modulo (buckets are times divided by a width: never negative in practice, but
 * the reference's `%` is what a negative one must give too). */
static inline Py_ssize_t
floor_mod(int64_t a, Py_ssize_t n)
{
    int64_t r = a % n;
    return (Py_ssize_t)(r < 0 ? r + n : r);
}

static int
as_ssize(PyObject *obj, Py_ssize_t *out)
{
    *out = PyLong_AsSsize_t(obj);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
as_int64(PyObject *obj, int64_t *out)
{
    long long value = PyLong_AsLongLong(obj);
    if (value == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)value;
    return 0;
}

static void
ring_release(Ring *ring)
{
    PyBuffer_Release(&ring->cells_view);
    PyBuffer_Release(&ring->epochs_view);
}

/* The slot's ring of the slab (cells, epochs) of `size` buckets of `kinds` counters. */
static int
ring_open(Ring *ring, PyObject *cells, PyObject *epochs, Py_ssize_t slot, Py_ssize_t size,
          Py_ssize_t kinds)
{
    if (size < 1 || kinds < 1 || size > (1 << 20) || kinds > 64) {
        PyErr_Format(PyExc_ValueError, "a ring of %zd buckets of %zd kinds", size, kinds);
        return -1;
    }
    if (PyObject_GetBuffer(cells, &ring->cells_view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        return -1;
    if (PyObject_GetBuffer(epochs, &ring->epochs_view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&ring->cells_view);
        return -1;
    }
    const char *cf = ring->cells_view.format, *ef = ring->epochs_view.format;
    if (ring->cells_view.itemsize != 2 || cf == NULL || strcmp(cf, "H") != 0 ||
        ring->epochs_view.itemsize != 8 || ef == NULL || (strcmp(ef, "q") != 0 && strcmp(ef, "l") != 0)) {
        ring_release(ring);
        PyErr_SetString(PyExc_TypeError, "cells must be an array('H') and epochs an array('q')");
        return -1;
    }
    ring->size = size;
    ring->kinds = kinds;
    ring->stride = (size + 1) * kinds;
    Py_ssize_t slots = ring->epochs_view.len / 8;
    if (slot < 0 || slot >= slots || (slot + 1) * ring->stride > ring->cells_view.len / 2) {
        ring_release(ring);
        PyErr_Format(PyExc_IndexError, "slot %zd of a slab of %zd", slot, slots);
        return -1;
    }
    ring->cells = (uint16_t *)ring->cells_view.buf;
    ring->epochs = (int64_t *)ring->epochs_view.buf;
    ring->base = slot * ring->stride;
    ring->epoch = ring->epochs[slot];
    return 0;
}

/* `RingSlab._advance`: clear the buckets between the ring's newest and `bucket`. */
static void
ring_advance(Ring *ring, Py_ssize_t slot, int64_t bucket)
{
    uint16_t *cells = ring->cells + ring->base;
    int64_t epoch = ring->epoch;
    Py_ssize_t size = ring->size, kinds = ring->kinds;
    if (epoch < 0) {
        /* a new slot is already zero */
    }
    else if (bucket - epoch >= size) {
        memset(cells, 0, (size_t)ring->stride * sizeof(uint16_t));
    }
    else {
        uint16_t *totals = cells + size * kinds;
        for (int64_t b = epoch + 1; b <= bucket; b++) {
            uint16_t *first = cells + floor_mod(b, size) * kinds;
            for (Py_ssize_t k = 0; k < kinds; k++) {
                uint16_t count = first[k];
                if (count) {
                    totals[k] -= count;
                    first[k] = 0;
                }
            }
        }
    }
    ring->epochs[slot] = bucket;
    ring->epoch = bucket;
}

/* Whether a write at `bucket` counts: the ring advanced to it if newer, false if too old. */
static int
ring_writable(Ring *ring, Py_ssize_t slot, int64_t bucket)
{
    if (bucket > ring->epoch) {
        ring_advance(ring, slot, bucket);
        return 1;
    }
    return bucket > ring->epoch - ring->size;
}

static int
check_kind(Ring *ring, Py_ssize_t kind)
{
    if (kind < 0 || kind >= ring->kinds) {
        PyErr_Format(PyExc_IndexError, "counter kind %zd of %zd", kind, ring->kinds);
        return -1;
    }
    return 0;
}

/* bump(cells, epochs, slot, bucket, first, second, size, kinds) */
static PyObject *
bump(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t slot, first, second, size, kinds;
    int64_t bucket;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "bump(cells, epochs, slot, bucket, first, second, size, kinds)");
        return NULL;
    }
    if (as_ssize(args[2], &slot) || as_int64(args[3], &bucket) || as_ssize(args[4], &first) ||
        as_ssize(args[5], &second) || as_ssize(args[6], &size) || as_ssize(args[7], &kinds))
        return NULL;
    Ring ring;
    if (ring_open(&ring, args[0], args[1], slot, size, kinds) < 0)
        return NULL;
    if (check_kind(&ring, first) < 0 || (second >= 0 && check_kind(&ring, second) < 0)) {
        ring_release(&ring);
        return NULL;
    }
    if (ring_writable(&ring, slot, bucket)) {
        uint16_t *cells = ring.cells + ring.base;
        uint16_t *cell = cells + floor_mod(bucket, size) * kinds;
        uint16_t *totals = cells + size * kinds;
        if (totals[first] < CEILING) {
            cell[first] += 1;
            totals[first] += 1;
        }
        if (second >= 0 && totals[second] < CEILING) {
            cell[second] += 1;
            totals[second] += 1;
        }
    }
    ring_release(&ring);
    Py_RETURN_NONE;
}

/* add(cells, epochs, slot, kind, bucket, amount, size, kinds) */
static PyObject *
add(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t slot, kind, amount, size, kinds;
    int64_t bucket;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "add(cells, epochs, slot, kind, bucket, amount, size, kinds)");
        return NULL;
    }
    if (as_ssize(args[2], &slot) || as_ssize(args[3], &kind) || as_int64(args[4], &bucket) ||
        as_ssize(args[5], &amount) || as_ssize(args[6], &size) || as_ssize(args[7], &kinds))
        return NULL;
    if (amount < 0) {
        /* The reference's cells are unsigned: a count below zero is refused there too. */
        PyErr_Format(PyExc_ValueError, "an amount of %zd", amount);
        return NULL;
    }
    Ring ring;
    if (ring_open(&ring, args[0], args[1], slot, size, kinds) < 0)
        return NULL;
    if (check_kind(&ring, kind) < 0) {
        ring_release(&ring);
        return NULL;
    }
    if (ring_writable(&ring, slot, bucket)) {
        uint16_t *cells = ring.cells + ring.base;
        uint16_t *total = cells + size * kinds + kind;
        Py_ssize_t room = CEILING - *total;
        uint16_t added = (uint16_t)(amount < room ? amount : room);
        cells[floor_mod(bucket, size) * kinds + kind] += added;
        *total += added;
    }
    ring_release(&ring);
    Py_RETURN_NONE;
}

/* total(cells, epochs, slot, kind, span, bucket, size, kinds) */
static PyObject *
total(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t slot, kind, span, size, kinds;
    int64_t bucket;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "total(cells, epochs, slot, kind, span, bucket, size, kinds)");
        return NULL;
    }
    if (as_ssize(args[2], &slot) || as_ssize(args[3], &kind) || as_ssize(args[4], &span) ||
        as_int64(args[5], &bucket) || as_ssize(args[6], &size) || as_ssize(args[7], &kinds))
        return NULL;
    Ring ring;
    if (ring_open(&ring, args[0], args[1], slot, size, kinds) < 0)
        return NULL;
    if (check_kind(&ring, kind) < 0) {
        ring_release(&ring);
        return NULL;
    }
    const uint16_t *cells = ring.cells + ring.base;
    int64_t epoch = ring.epoch, sum = 0;
    if (epoch == bucket && span >= size) {
        sum = cells[size * kinds + kind];
    }
    else {
        /* windows.live_buckets */
        int64_t oldest = bucket - span + 1;
        if (!(epoch < oldest || epoch <= bucket - size)) {
            int64_t from = oldest > epoch - size + 1 ? oldest : epoch - size + 1;
            int64_t to = epoch < bucket ? epoch : bucket;
            for (int64_t b = from; b <= to; b++)
                sum += cells[floor_mod(b, size) * kinds + kind];
        }
    }
    ring_release(&ring);
    return PyLong_FromLongLong(sum);
}

static PyMethodDef rings_methods[] = {
    {"bump", (PyCFunction)(void (*)(void))bump, METH_FASTCALL,
     "bump(cells, epochs, slot, bucket, first, second, size, kinds): RingSlab.bump."},
    {"add", (PyCFunction)(void (*)(void))add, METH_FASTCALL,
     "add(cells, epochs, slot, kind, bucket, amount, size, kinds): RingSlab.add."},
    {"total", (PyCFunction)(void (*)(void))total, METH_FASTCALL,
     "total(cells, epochs, slot, kind, span, bucket, size, kinds): RingSlab.total."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef rings_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rempart.engine._rings",
    .m_doc = PyDoc_STR("The counter rings' arithmetic in C (see rempart/engine/windows.py)."),
    .m_size = -1,
    .m_methods = rings_methods,
};

PyMODINIT_FUNC
PyInit__rings(void)
{
    return PyModule_Create(&rings_module);
}
