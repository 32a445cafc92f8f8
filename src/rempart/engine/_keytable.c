/* The engine's key table in C: tracked key -> its slot in a ring slab, least recently used first.
 *
 * The compiled counterpart of rempart/engine/keytable.py's `PyKeyTable` (the reference, and the
 * fallback where nothing compiles): same methods, same answers, same errors. A key is kept as its
 * code units (the str's own kind and data, copied: no encoding step, and no str object kept per
 * key), its hash (the str's cached siphash, so the table is as hard to flood as a dict) and its
 * slot, in one array of entries linked in least-recently-used order; an open-addressing index of
 * 32-bit positions finds them (grown into a new index a few cells per addition, so that no
 * call pays for moving them all). A tracked key costs its entry (40 bytes), its code units (in one
 * malloc'd block) and about 8 bytes of index, against about 250 bytes in an OrderedDict of
 * str -> int (str, int, dict entry, ordered-dict node).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define EMPTY (-1)
#define DELETED (-2)
#define NONE (-1)
#define MAX_ENTRIES (INT32_MAX / 2)

typedef struct {
    Py_hash_t hash;
    char *data;        /* the key's code units; NULL: a free entry */
    Py_ssize_t length; /* in code points */
    int64_t slot;
    int32_t prev, next; /* least-recently-used order; `next` also links the free entries */
    int32_t kind;       /* PyUnicode kind: 1, 2 or 4 bytes per code point */
    int32_t walked;     /* the latest walk that visited the entry (or began after it was added) */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    int32_t capacity; /* entries allocated */
    int32_t top;      /* entries ever used (the rest of the array is untouched) */
    int32_t free;     /* first free entry below `top`, or NONE */
    int32_t *index;   /* positions into `entries`, EMPTY or DELETED */
    size_t mask;      /* index size - 1 (a power of two) */
    int32_t *old_index; /* the index being moved into `index` a few cells per addition, or NULL */
    size_t old_mask;
    size_t moved;       /* cells of `old_index` moved so far */
    Py_ssize_t used;  /* tracked keys */
    Py_ssize_t filled; /* index cells that are not EMPTY (used + DELETED) */
    int32_t oldest, newest;
    int32_t cursor;   /* where the walk goes on (`begin_walk`), or NONE */
    int32_t walk_gen; /* the walk under way: entries with this `walked` are not visited */
    Py_ssize_t key_bytes; /* bytes of code units held, for __sizeof__ */
} KeyTable;

typedef struct {
    Py_hash_t hash;
    const char *data;
    Py_ssize_t length;
    int kind;
} Probe;

static int
probe_of(PyObject *key, Probe *probe)
{
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "a tracked key is a str, not %.100s", Py_TYPE(key)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(key) < 0)
        return -1;
#endif
    probe->hash = PyObject_Hash(key);
    if (probe->hash == -1)
        return -1;
    probe->data = PyUnicode_DATA(key);
    probe->length = PyUnicode_GET_LENGTH(key);
    probe->kind = PyUnicode_KIND(key);
    return 0;
}

/* The cell of `index` holding the key, or NULL. */
static int32_t *
probe_in(KeyTable *self, int32_t *index, size_t mask, const Probe *probe)
{
    size_t perturb = (size_t)probe->hash;
    size_t i = (size_t)probe->hash & mask;
    Py_ssize_t size = probe->length * probe->kind;
    for (;;) {
        int32_t at = index[i];
        if (at == EMPTY)
            return NULL;
        if (at >= 0) {
            Entry *e = &self->entries[at];
            if (e->hash == probe->hash && e->length == probe->length && e->kind == probe->kind &&
                memcmp(e->data, probe->data, (size_t)size) == 0)
                return &index[i];
        }
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
}

/* The cell holding the key (in the index, or in the old one while it is being moved), or NULL
 * when the key is absent. */
static int32_t *
find_cell(KeyTable *self, const Probe *probe)
{
    if (self->index == NULL)
        return NULL;
    int32_t *cell = probe_in(self, self->index, self->mask, probe);
    if (cell == NULL && self->old_index != NULL)
        cell = probe_in(self, self->old_index, self->old_mask, probe);
    return cell;
}

/* The cell of `index` that points at entry `at`, or NULL. */
static int32_t *
entry_cell_in(int32_t *index, size_t mask, Py_hash_t hash, int32_t at)
{
    size_t perturb = (size_t)hash;
    size_t i = perturb & mask;
    while (index[i] != at) {
        if (index[i] == EMPTY)
            return NULL;
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
    return &index[i];
}

/* The cell that points at entry `at` (which is tracked: in one of the two indexes). */
static int32_t *
cell_of_entry(KeyTable *self, int32_t at)
{
    Py_hash_t hash = self->entries[at].hash;
    int32_t *cell = entry_cell_in(self->index, self->mask, hash, at);
    if (cell == NULL)
        cell = entry_cell_in(self->old_index, self->old_mask, hash, at);
    return cell;
}

static void
place(KeyTable *self, int32_t at)
{
    size_t mask = self->mask;
    size_t perturb = (size_t)self->entries[at].hash;
    size_t i = perturb & mask;
    while (self->index[i] >= 0) {
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
    if (self->index[i] == EMPTY)
        self->filled++;
    self->index[i] = at;
}

/* Move up to `count` cells of the old index into the index (each moved cell left DELETED, so
 * that lookups in the old index neither find it nor stop at it); free it once all are moved. */
static void
move_cells(KeyTable *self, size_t count)
{
    int32_t *old = self->old_index;
    if (old == NULL)
        return;
    size_t total = self->old_mask + 1;
    size_t end = count >= total - self->moved ? total : self->moved + count;
    for (size_t i = self->moved; i < end; i++) {
        int32_t at = old[i];
        if (at >= 0) {
            place(self, at);
            old[i] = DELETED;
        }
    }
    self->moved = end;
    if (end == total) {
        PyMem_RawFree(old);
        self->old_index = NULL;
        self->old_mask = 0;
        self->moved = 0;
    }
}

/* Old index cells moved per addition while a rebuild is under way: the move ends long before
 * the new index fills (it starts at most half full, and a third of it must be taken first). */
#define MOVE_STEP 32

/* A new index for the tracked keys (and one more), DELETED cells dropped. The keys move into
 * it MOVE_STEP cells per addition, as Redis rehashes its dicts: moving them all at once paused
 * the caller 21 ms at 700,000 keys and 38 ms at 1.4 million (fresh pages, a random write each). */
static int
rebuild_index(KeyTable *self)
{
    move_cells(self, SIZE_MAX); /* a rebuild still under way ends first */
    /* At most half full after the rebuild, so that at least a sixth of the index is taken
     * before the next one: a rebuild costs O(keys) and comes every O(keys) additions. */
    size_t size = 8;
    while (size <= (size_t)(self->used + 1) * 2)
        size <<= 1;
    int32_t *index = PyMem_RawMalloc(size * sizeof(int32_t));
    if (index == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(index, 0xff, size * sizeof(int32_t)); /* EMPTY */
    self->old_index = self->index;
    self->old_mask = self->mask;
    self->moved = 0;
    self->index = index;
    self->mask = size - 1;
    self->filled = 0;
    move_cells(self, MOVE_STEP);
    return 0;
}

static void
unlink_entry(KeyTable *self, int32_t at)
{
    Entry *e = &self->entries[at];
    if (self->cursor == at) /* a walk goes on from the next entry */
        self->cursor = e->next;
    if (e->prev != NONE)
        self->entries[e->prev].next = e->next;
    else
        self->oldest = e->next;
    if (e->next != NONE)
        self->entries[e->next].prev = e->prev;
    else
        self->newest = e->prev;
}

static void
link_newest(KeyTable *self, int32_t at)
{
    Entry *e = &self->entries[at];
    e->prev = self->newest;
    e->next = NONE;
    if (self->newest != NONE)
        self->entries[self->newest].next = at;
    else
        self->oldest = at;
    self->newest = at;
}

/* Forget the entry the index cell `cell` points at; its slot. */
static int64_t
remove_at(KeyTable *self, int32_t *cell)
{
    int32_t at = *cell;
    Entry *e = &self->entries[at];
    int64_t slot = e->slot;
    *cell = DELETED;
    unlink_entry(self, at);
    self->key_bytes -= e->length * e->kind;
    PyMem_RawFree(e->data);
    e->data = NULL;
    e->next = self->free;
    self->free = at;
    self->used--;
    return slot;
}

static int
check_slot(PyObject *value, int64_t *slot)
{
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0) {
        PyErr_SetString(PyExc_ValueError, "a slot is not negative");
        return -1;
    }
    *slot = (int64_t)v;
    return 0;
}

/* The cell holding a key (NULL when it is absent); -1 for a key that is not a str (an exception
 * set), 0 otherwise. */
static int
lookup(KeyTable *self, PyObject *key, int32_t **cell)
{
    Probe probe;
    if (probe_of(key, &probe) < 0)
        return -1;
    *cell = find_cell(self, &probe);
    return 0;
}

static PyObject *
KeyTable_get(KeyTable *self, PyObject *key)
{
    int32_t *cell;
    if (lookup(self, key, &cell) < 0)
        return NULL;
    if (cell == NULL)
        return PyLong_FromLong(-1);
    return PyLong_FromLongLong(self->entries[*cell].slot);
}

static PyObject *
KeyTable_touch(KeyTable *self, PyObject *key)
{
    int32_t *cell;
    if (lookup(self, key, &cell) < 0)
        return NULL;
    if (cell == NULL)
        return PyLong_FromLong(-1);
    int32_t at = *cell;
    if (at != self->newest) {
        unlink_entry(self, at);
        link_newest(self, at);
    }
    return PyLong_FromLongLong(self->entries[at].slot);
}

static PyObject *
KeyTable_add(KeyTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "add() takes a key and a slot (%zd given)", nargs);
        return NULL;
    }
    Probe probe;
    int64_t slot;
    if (probe_of(args[0], &probe) < 0 || check_slot(args[1], &slot) < 0)
        return NULL;
    if (find_cell(self, &probe) != NULL) {
        PyErr_SetString(PyExc_ValueError, "the key is already tracked");
        return NULL;
    }
    if (self->used >= MAX_ENTRIES) {
        PyErr_SetString(PyExc_OverflowError, "too many tracked keys");
        return NULL;
    }
    Py_ssize_t size = probe.length * probe.kind;
    char *data = PyMem_RawMalloc(size ? (size_t)size : 1);
    if (data == NULL)
        return PyErr_NoMemory();
    int32_t at = self->free;
    if (at == NONE && self->top == self->capacity) {
        int64_t grown = self->capacity < 64 ? 64 : (int64_t)self->capacity + self->capacity / 2;
        if (grown > MAX_ENTRIES)
            grown = MAX_ENTRIES;
        Entry *entries = PyMem_RawRealloc(self->entries, (size_t)grown * sizeof(Entry));
        if (entries == NULL) {
            PyMem_RawFree(data);
            return PyErr_NoMemory();
        }
        self->entries = entries;
        self->capacity = (int32_t)grown;
    }
    move_cells(self, MOVE_STEP);
    /* Grow (or clean) the index before placing, so that `place` always finds an EMPTY cell. */
    if (self->index == NULL || (size_t)(self->filled + 1) * 3 >= (self->mask + 1) * 2) {
        if (rebuild_index(self) < 0) {
            PyMem_RawFree(data);
            return NULL;
        }
    }
    if (at == NONE)
        at = self->top++;
    else
        self->free = self->entries[at].next;
    Entry *e = &self->entries[at];
    memcpy(data, probe.data, (size_t)size);
    e->hash = probe.hash;
    e->data = data;
    e->length = probe.length;
    e->kind = probe.kind;
    e->slot = slot;
    e->walked = self->walk_gen; /* added during a walk: not visited by it */
    link_newest(self, at);
    place(self, at);
    self->used++;
    self->key_bytes += size;
    Py_RETURN_NONE;
}

static PyObject *
KeyTable_pop(KeyTable *self, PyObject *key)
{
    int32_t *cell;
    if (lookup(self, key, &cell) < 0)
        return NULL;
    if (cell == NULL)
        return PyLong_FromLong(-1);
    return PyLong_FromLongLong(remove_at(self, cell));
}

static PyObject *
key_of(Entry *e)
{
    return PyUnicode_FromKindAndData(e->kind, e->data, e->length);
}

static PyObject *
KeyTable_pop_oldest(KeyTable *self, PyObject *Py_UNUSED(ignored))
{
    if (self->oldest == NONE) {
        PyErr_SetString(PyExc_KeyError, "no key is tracked");
        return NULL;
    }
    int32_t at = self->oldest;
    PyObject *key = key_of(&self->entries[at]);
    if (key == NULL)
        return NULL;
    int64_t slot = remove_at(self, cell_of_entry(self, at));
    PyObject *pair = Py_BuildValue("(NL)", key, (long long)slot);
    return pair;
}

static PyObject *
KeyTable_tracked(KeyTable *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *keys = PyList_New(self->used);
    if (keys == NULL)
        return NULL;
    Py_ssize_t i = 0;
    for (int32_t at = self->oldest; at != NONE; at = self->entries[at].next) {
        PyObject *key = key_of(&self->entries[at]);
        if (key == NULL) {
            Py_DECREF(keys);
            return NULL;
        }
        PyList_SET_ITEM(keys, i++, key);
    }
    return keys;
}

static PyObject *
KeyTable_slots(KeyTable *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, self->used * (Py_ssize_t)sizeof(int64_t));
    if (out == NULL)
        return NULL;
    int64_t *slots = (int64_t *)PyBytes_AS_STRING(out);
    for (int32_t at = self->oldest; at != NONE; at = self->entries[at].next)
        *slots++ = self->entries[at].slot;
    return out;
}

static PyObject *
KeyTable_begin_walk(KeyTable *self, PyObject *Py_UNUSED(ignored))
{
    self->walk_gen++;
    self->cursor = self->oldest;
    Py_RETURN_NONE;
}

static PyObject *
KeyTable_walk(KeyTable *self, PyObject *arg)
{
    Py_ssize_t count = PyLong_AsSsize_t(arg);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    if (count < 1) {
        PyErr_SetString(PyExc_ValueError, "a walk visits at least one key at a time");
        return NULL;
    }
    PyObject *keys = PyList_New(0);
    PyObject *slots = PyList_New(0);
    if (keys == NULL || slots == NULL)
        goto fail;
    Py_ssize_t n = 0;
    while (n < count && self->cursor != NONE) {
        Entry *e = &self->entries[self->cursor];
        self->cursor = e->next;
        if (e->walked == self->walk_gen)
            continue; /* visited, then used (it moved to the newest end), or added since */
        e->walked = self->walk_gen;
        n++;
        PyObject *key = key_of(e);
        if (key == NULL)
            goto fail;
        int failed = PyList_Append(keys, key);
        Py_DECREF(key);
        if (failed < 0)
            goto fail;
        PyObject *slot = PyLong_FromLongLong(e->slot);
        if (slot == NULL)
            goto fail;
        failed = PyList_Append(slots, slot);
        Py_DECREF(slot);
        if (failed < 0)
            goto fail;
    }
    return Py_BuildValue("(NN)", keys, slots);
fail:
    Py_XDECREF(keys);
    Py_XDECREF(slots);
    return NULL;
}

static void
clear_all(KeyTable *self)
{
    for (int32_t at = 0; at < self->top; at++)
        PyMem_RawFree(self->entries[at].data);
    PyMem_RawFree(self->entries);
    PyMem_RawFree(self->index);
    PyMem_RawFree(self->old_index);
    self->entries = NULL;
    self->index = self->old_index = NULL;
    self->old_mask = self->moved = 0;
    self->capacity = self->top = 0;
    self->free = self->oldest = self->newest = self->cursor = NONE;
    self->mask = 0;
    self->used = self->filled = self->key_bytes = 0;
}

static PyObject *
KeyTable_clear(KeyTable *self, PyObject *Py_UNUSED(ignored))
{
    clear_all(self);
    Py_RETURN_NONE;
}

static Py_ssize_t
KeyTable_len(KeyTable *self)
{
    return self->used;
}

static PyObject *
KeyTable_sizeof(KeyTable *self, PyObject *Py_UNUSED(ignored))
{
    size_t size = sizeof(KeyTable) + (size_t)self->capacity * sizeof(Entry) +
                  (self->index ? (self->mask + 1) * sizeof(int32_t) : 0) +
                  (self->old_index ? (self->old_mask + 1) * sizeof(int32_t) : 0) +
                  (size_t)self->key_bytes;
    return PyLong_FromSize_t(size);
}

static int
KeyTable_init(KeyTable *self, PyObject *args, PyObject *kwds)
{
    if ((args != NULL && PyTuple_GET_SIZE(args) > 0) || (kwds != NULL && PyDict_GET_SIZE(kwds) > 0)) {
        PyErr_SetString(PyExc_TypeError, "KeyTable() takes no arguments");
        return -1;
    }
    clear_all(self);
    return 0;
}

static void
KeyTable_dealloc(KeyTable *self)
{
    clear_all(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
KeyTable_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    KeyTable *self = (KeyTable *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->free = self->oldest = self->newest = self->cursor = NONE;
    }
    return (PyObject *)self;
}

static PyMethodDef KeyTable_methods[] = {
    {"get", (PyCFunction)KeyTable_get, METH_O, "The key's slot, or -1 when it is not tracked."},
    {"touch", (PyCFunction)KeyTable_touch, METH_O,
     "The key's slot, now the most recently used; -1 when it is not tracked."},
    {"add", (PyCFunction)(void (*)(void))KeyTable_add, METH_FASTCALL,
     "Track a key (most recently used) at a slot; ValueError when it is tracked already."},
    {"pop", (PyCFunction)KeyTable_pop, METH_O,
     "Stop tracking a key; its slot, or -1 when it was not tracked."},
    {"pop_oldest", (PyCFunction)KeyTable_pop_oldest, METH_NOARGS,
     "(key, slot) of the least recently used key, no longer tracked; KeyError when empty."},
    {"tracked", (PyCFunction)KeyTable_tracked, METH_NOARGS, "The tracked keys, least recently used first."},
    {"slots", (PyCFunction)KeyTable_slots, METH_NOARGS,
     "Their slots in the same order, as bytes (array 'q', machine order)."},
    {"clear", (PyCFunction)KeyTable_clear, METH_NOARGS, "Track nothing."},
    {"begin_walk", (PyCFunction)KeyTable_begin_walk, METH_NOARGS,
     "Start a walk over the tracked keys, least recently used first (see keytable.KeyIndex)."},
    {"walk", (PyCFunction)KeyTable_walk, METH_O,
     "The next (keys, slots) of the walk, at most `count` of each; empty lists once it is done."},
    {"__sizeof__", (PyCFunction)KeyTable_sizeof, METH_NOARGS, "Bytes held."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods KeyTable_as_sequence = {
    .sq_length = (lenfunc)KeyTable_len,
};

static PyTypeObject KeyTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rempart.engine._keytable.KeyTable",
    .tp_doc = PyDoc_STR("Tracked key -> slot, least recently used first (see keytable.py)."),
    .tp_basicsize = sizeof(KeyTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = KeyTable_new,
    .tp_init = (initproc)KeyTable_init,
    .tp_dealloc = (destructor)KeyTable_dealloc,
    .tp_methods = KeyTable_methods,
    .tp_as_sequence = &KeyTable_as_sequence,
};

static struct PyModuleDef keytable_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rempart.engine._keytable",
    .m_doc = PyDoc_STR("The engine's key table in C (see rempart/engine/keytable.py)."),
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__keytable(void)
{
    if (PyType_Ready(&KeyTableType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&keytable_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&KeyTableType);
    if (PyModule_AddObject(module, "KeyTable", (PyObject *)&KeyTableType) < 0) {
        Py_DECREF(&KeyTableType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
