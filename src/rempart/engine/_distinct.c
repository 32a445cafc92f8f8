/* The distinct-count sketches' per-item arithmetic in C, on a sketch's bytearray.
 *
 * The compiled counterpart of rempart/engine/distinct.py's `Sketch.py_add` and `py_estimate`
 * (the reference, and the fallback where nothing compiles). A sketch's buffer holds `size`
 * 256-bit bitmaps, one per bucket, then up to EXACT remembered items of 5 bytes (the item's
 * 32-bit hash, little-endian, and the low byte of its newest bucket); the object keeps its
 * epoch and its last item, which the Python wrapper reads and sets around these calls:
 *
 * - add(maps, epoch, item_hash, bucket, size, exact) -> the sketch's new epoch (the ring
 *   advanced, its expired items forgotten, the item's bit set and the item remembered, exactly
 *   as `py_add` does; a bucket older than the ring changes nothing);
 * - estimate(maps, epoch, span, bucket, size) -> `py_estimate`'s count.
 *
 * `setup(table)` takes distinct.py's estimate table (indexed by the number of zero bits) once,
 * so both implementations read the same numbers. Compiled by mypyc, the Python methods index
 * the bytearray a byte at a time and OR the bitmaps as big ints: about 1 us an add.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BITS 256
#define BYTES 32
#define EXACT 16
#define ENTRY 5

static long long estimates[BITS + 1];
static int ready = 0;

static int
as_int64(PyObject *obj, int64_t *out)
{
    long long value = PyLong_AsLongLong(obj);
    if (value == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)value;
    return 0;
}

static inline Py_ssize_t
floor_mod(int64_t a, Py_ssize_t n)
{
    int64_t r = a % n;
    return (Py_ssize_t)(r < 0 ? r + n : r);
}

/* The sketch's buffer, checked against its ring of `size` buckets. */
static uint8_t *
sketch_buffer(PyObject *maps, int64_t size, Py_ssize_t *length)
{
    if (!PyByteArray_CheckExact(maps)) {
        PyErr_SetString(PyExc_TypeError, "a sketch's buffer must be a bytearray");
        return NULL;
    }
    if (size < 1 || size > (1 << 16)) {
        PyErr_Format(PyExc_ValueError, "a ring of %lld buckets", (long long)size);
        return NULL;
    }
    Py_ssize_t n = PyByteArray_GET_SIZE(maps), base = (Py_ssize_t)size * BYTES;
    if (n < base || (n - base) % ENTRY || n - base > EXACT * ENTRY) {
        PyErr_Format(PyExc_ValueError, "a sketch of %zd bytes for a ring of %lld", n,
                     (long long)size);
        return NULL;
    }
    *length = n;
    return (uint8_t *)PyByteArray_AS_STRING(maps);
}

/* distinct._forget_expired: drop the remembered items whose newest bucket left the ring that
 * now ends at `epoch`, keeping the others in order. */
static int
forget_expired(PyObject *maps, Py_ssize_t base, int64_t epoch, int64_t size)
{
    uint8_t *data = (uint8_t *)PyByteArray_AS_STRING(maps);
    Py_ssize_t end = PyByteArray_GET_SIZE(maps), kept = base;
    for (Py_ssize_t at = base; at < end; at += ENTRY) {
        if (((epoch - data[at + 4]) & 0xFF) < size) {
            if (kept != at)
                memmove(data + kept, data + at, ENTRY);
            kept += ENTRY;
        }
    }
    return kept == end ? 0 : PyByteArray_Resize(maps, kept);
}

static PyObject *
add(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t epoch, item, bucket, size;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "add(maps, epoch, item_hash, bucket, size, exact)");
        return NULL;
    }
    if (as_int64(args[1], &epoch) || as_int64(args[2], &item) || as_int64(args[3], &bucket) ||
        as_int64(args[4], &size))
        return NULL;
    int exact = PyObject_IsTrue(args[5]);
    if (exact < 0)
        return NULL;
    PyObject *maps = args[0];
    Py_ssize_t n;
    uint8_t *data = sketch_buffer(maps, size, &n);
    if (data == NULL)
        return NULL;
    Py_ssize_t base = (Py_ssize_t)size * BYTES;
    if (bucket > epoch) {
        if (epoch < 0) {
            /* a new sketch is already zero */
        }
        else if (bucket - epoch >= size) {
            memset(data, 0, (size_t)base);
            if (n > base && PyByteArray_Resize(maps, base) < 0)
                return NULL;
        }
        else {
            for (int64_t b = epoch + 1; b <= bucket; b++)
                memset(data + floor_mod(b, size) * BYTES, 0, BYTES);
            if (n > base && forget_expired(maps, base, bucket, size) < 0)
                return NULL;
        }
        epoch = bucket;
    }
    else if (bucket <= epoch - size) {
        return PyLong_FromLongLong(epoch);
    }
    data = (uint8_t *)PyByteArray_AS_STRING(maps);
    n = PyByteArray_GET_SIZE(maps);
    unsigned bit = (unsigned)(item & 0xFF);
    data[floor_mod(bucket, size) * BYTES + (bit >> 3)] |= (uint8_t)(1u << (bit & 7));
    if (exact) {
        uint32_t hash = (uint32_t)(item & 0xFFFFFFFF);
        uint8_t key[4] = {hash & 0xFF, (hash >> 8) & 0xFF, (hash >> 16) & 0xFF, hash >> 24};
        Py_ssize_t found = -1;
        for (Py_ssize_t at = base; at < n; at += ENTRY) {
            if (memcmp(data + at, key, 4) == 0) {
                found = at;
                break;
            }
        }
        if (found >= 0) {
            /* Ages are below `size` relative to the epoch: one byte tells them apart. */
            if (epoch - bucket < ((epoch - data[found + 4]) & 0xFF))
                data[found + 4] = (uint8_t)(bucket & 0xFF);
        }
        else if (n - base < EXACT * ENTRY) {
            if (PyByteArray_Resize(maps, n + ENTRY) < 0)
                return NULL;
            data = (uint8_t *)PyByteArray_AS_STRING(maps);
            memcpy(data + n, key, 4);
            data[n + 4] = (uint8_t)(bucket & 0xFF);
        }
    }
    return PyLong_FromLongLong(epoch);
}

static PyObject *
estimate(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t epoch, span, bucket, size;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "estimate(maps, epoch, span, bucket, size)");
        return NULL;
    }
    if (!ready) {
        PyErr_SetString(PyExc_RuntimeError, "_distinct.setup() was not called");
        return NULL;
    }
    if (as_int64(args[1], &epoch) || as_int64(args[2], &span) || as_int64(args[3], &bucket) ||
        as_int64(args[4], &size))
        return NULL;
    Py_ssize_t n;
    const uint8_t *data = sketch_buffer(args[0], size, &n);
    if (data == NULL)
        return NULL;
    /* windows.live_buckets */
    int64_t oldest = bucket - span + 1;
    if (epoch < oldest || epoch <= bucket - size)
        return PyLong_FromLong(0);
    if (oldest < epoch - size + 1)
        oldest = epoch - size + 1;
    int64_t newest = epoch < bucket ? epoch : bucket;
    uint64_t unions[BYTES / 8] = {0, 0, 0, 0};
    for (int64_t b = oldest; b <= newest; b++) {
        const uint8_t *map = data + floor_mod(b, size) * BYTES;
        for (int w = 0; w < BYTES / 8; w++) {
            uint64_t word;
            memcpy(&word, map + 8 * w, 8);
            unions[w] |= word;
        }
    }
    int ones = 0;
    for (int w = 0; w < BYTES / 8; w++)
        ones += __builtin_popcountll(unions[w]);
    long long value = estimates[BITS - ones];
    Py_ssize_t base = (Py_ssize_t)size * BYTES;
    if (value >= EXACT || n - base <= value * ENTRY)
        return PyLong_FromLongLong(value);
    /* Remembered items whose newest bucket is in the window: ages epoch-newest..epoch-oldest. */
    int64_t young = epoch - newest, old = epoch - oldest;
    long long remembered = 0;
    for (Py_ssize_t at = base + 4; at < n; at += ENTRY) {
        int64_t age = (epoch - data[at]) & 0xFF;
        if (young <= age && age <= old)
            remembered++;
    }
    return PyLong_FromLongLong(remembered > value ? remembered : value);
}

static PyObject *
setup(PyObject *module, PyObject *table)
{
    PyObject *items = PySequence_Fast(table, "setup(table): a sequence of 257 ints");
    if (items == NULL)
        return NULL;
    if (PySequence_Fast_GET_SIZE(items) != BITS + 1) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_ValueError, "setup(table): a sequence of 257 ints");
        return NULL;
    }
    for (Py_ssize_t i = 0; i <= BITS; i++) {
        long long value = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(items, i));
        if (value == -1 && PyErr_Occurred()) {
            Py_DECREF(items);
            return NULL;
        }
        estimates[i] = value;
    }
    Py_DECREF(items);
    ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef distinct_methods[] = {
    {"add", (PyCFunction)(void (*)(void))add, METH_FASTCALL,
     "add(maps, epoch, item_hash, bucket, size, exact): Sketch.py_add; the new epoch."},
    {"estimate", (PyCFunction)(void (*)(void))estimate, METH_FASTCALL,
     "estimate(maps, epoch, span, bucket, size): Sketch.py_estimate."},
    {"setup", (PyCFunction)setup, METH_O, "setup(table): the estimate by number of zero bits."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef distinct_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rempart.engine._distinct",
    .m_doc = PyDoc_STR("Distinct-count sketches' arithmetic in C (see rempart/engine/distinct.py)."),
    .m_size = -1,
    .m_methods = distinct_methods,
};

PyMODINIT_FUNC
PyInit__distinct(void)
{
    return PyModule_Create(&distinct_module);
}
