/* The replay hot path in C: the same fold as `projections.lead.record`, driven
 * over whole lists of records, plus the RFC 3339 time check it needs and the
 * routing of lines to replay processes.
 *
 * It is an optional accelerator. The pure Python code stays the reference and
 * runs wherever this module is not built; property tests check that both give
 * the same answer for the same input (tests/unit/test_fold_accel.py).
 * Decoding stays with the contract: each record is decoded by the msgspec
 * decoder of `schemas.fast`, and anything that decoder or the time check here
 * does not accept goes to `schemas.decode.decode`, which says why.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---- RFC 3339 times, exactly as schemas.events.parse_time reads them ---- */

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int64_t days_from_civil(int64_t y, int m, int d) {
    /* Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return 29;
    return days[m - 1];
}

/* 1 and the microseconds since the epoch, or 0 when `s` is not a time the reference accepts. */
static int parse_rfc3339(const char *s, Py_ssize_t n, int64_t *out) {
    int year, month, day, hour, minute, second, frac = 0, off_h, off_m;
    if (n < 20) return 0;
    if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) || s[7] != '-' ||
        !digits(s + 8, 2, &day) || s[10] != 'T' || !digits(s + 11, 2, &hour) || s[13] != ':' ||
        !digits(s + 14, 2, &minute) || s[16] != ':' || !digits(s + 17, 2, &second))
        return 0;
    Py_ssize_t i = 19;
    if (s[i] == '.') {
        int count = 0;
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (count < 6) frac = frac * 10 + (s[i] - '0');
            count++;
            i++;
        }
        if (count < 1 || count > 9) return 0;
        for (int k = count; k < 6; k++) frac *= 10;
    }
    int offset_minutes = 0;
    if (i < n && s[i] == 'Z') {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        if (n - i < 6 || !digits(s + i + 1, 2, &off_h) || s[i + 3] != ':' || !digits(s + i + 4, 2, &off_m)) return 0;
        offset_minutes = off_h * 60 + off_m;
        if (offset_minutes >= 24 * 60) return 0;
        if (s[i] == '-') offset_minutes = -offset_minutes;
        i += 6;
    } else {
        return 0;
    }
    if (i != n) return 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59)
        return 0;
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    *out = seconds * 1000000 + frac;
    return 1;
}

static PyObject *parse_time(PyObject *module, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "parse_time takes a str");
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    int64_t micros;
    if (s == NULL || !parse_rfc3339(s, n, &micros)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "must be an RFC 3339 time with offset, like 2026-09-01T10:00:00Z");
        return NULL;
    }
    return PyLong_FromLongLong(micros);
}

/* ---- the fold ---- */

typedef struct {
    PyObject *leads;        /* dict: lead id -> LeadState */
    PyObject *new_state;    /* LeadState */
    PyObject *digest_of;    /* xxhash.xxh3_64_intdigest */
    int64_t mark;
    int has_mark;
    Py_ssize_t valid, duplicates, invalid;
} Fold;

static PyObject *s_seen, *s_first_at, *s_last_at, *s_events, *s_content_reads, *s_contacts, *s_append;
static PyObject *s_event_id, *s_lead_id, *s_occurred_at, *s_inbound, *s_schema_version, *s_index;

enum { CONTENT_READ = 1, CONTACT_MADE = 2, N_TYPES = 6, INBOUND = 1, OUTBOUND = 2 };

static int add_to_attr(PyObject *obj, PyObject *name, long delta) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    long current = PyLong_AsLong(value);
    Py_DECREF(value);
    if (current == -1 && PyErr_Occurred()) return -1;
    PyObject *next = PyLong_FromLong(current + delta);
    if (next == NULL) return -1;
    int rc = PyObject_SetAttr(obj, name, next);
    Py_DECREF(next);
    return rc;
}

/* What `record` does, for a valid event; 1 applied, 0 duplicate, -1 error. */
static int apply(Fold *f, PyObject *lead, PyObject *event_id, long kind, int64_t at, PyObject *inbound) {
    if (kind < 0 || kind >= N_TYPES) {
        PyErr_Format(PyExc_ValueError, "event type index %ld out of range", kind);
        return -1;
    }
    PyObject *state = PyDict_GetItemWithError(f->leads, lead); /* borrowed */
    if (state == NULL) {
        if (PyErr_Occurred()) return -1;
        PyObject *fresh = PyObject_CallNoArgs(f->new_state);
        if (fresh == NULL) return -1;
        int rc = PyDict_SetItem(f->leads, lead, fresh);
        Py_DECREF(fresh);
        if (rc < 0) return -1;
        state = fresh; /* the dict holds it */
    }
    PyObject *encoded = PyUnicode_AsEncodedString(event_id, "utf-8", "strict");
    if (encoded == NULL) return -1;
    PyObject *hashed = PyObject_CallOneArg(f->digest_of, encoded);
    Py_DECREF(encoded);
    if (hashed == NULL) return -1;
    unsigned long long raw = PyLong_AsUnsignedLongLong(hashed);
    Py_DECREF(hashed);
    if (raw == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    int64_t digest = (int64_t)(raw ^ (1ULL << 63)); /* the digest minus 2**63, as record() stores it */

    PyObject *seen = PyObject_GetAttr(state, s_seen);
    if (seen == NULL) return -1;
    Py_buffer view;
    if (PyObject_GetBuffer(seen, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(seen);
        return -1;
    }
    const int64_t *items = (const int64_t *)view.buf;
    Py_ssize_t count = view.len / (Py_ssize_t)sizeof(int64_t);
    int found = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (items[i] == digest) {
            found = 1;
            break;
        }
    }
    PyBuffer_Release(&view);
    if (found) {
        Py_DECREF(seen);
        return 0;
    }
    PyObject *boxed = PyLong_FromLongLong(digest);
    if (boxed == NULL) {
        Py_DECREF(seen);
        return -1;
    }
    PyObject *ok = PyObject_CallMethodOneArg(seen, s_append, boxed);
    Py_DECREF(boxed);
    Py_DECREF(seen);
    if (ok == NULL) return -1;
    Py_DECREF(ok);

    PyObject *at_obj = PyLong_FromLongLong(at);
    if (at_obj == NULL) return -1;
    int rc = -1;
    PyObject *first_at = PyObject_GetAttr(state, s_first_at);
    if (first_at == NULL || !PyList_Check(first_at) || PyList_GET_SIZE(first_at) != N_TYPES) {
        if (first_at != NULL) PyErr_SetString(PyExc_TypeError, "LeadState.first_at must be a list, one entry per event type");
        goto done;
    }
    PyObject *first = PyList_GET_ITEM(first_at, kind);
    int earlier = first == Py_None;
    if (!earlier) {
        long long value = PyLong_AsLongLong(first);
        if (value == -1 && PyErr_Occurred()) goto done;
        earlier = at < value;
    }
    if (earlier) {
        Py_INCREF(at_obj);
        if (PyList_SetItem(first_at, kind, at_obj) < 0) goto done;
    }
    PyObject *last = PyObject_GetAttr(state, s_last_at);
    if (last == NULL) goto done;
    long long last_value = PyLong_AsLongLong(last);
    Py_DECREF(last);
    if (last_value == -1 && PyErr_Occurred()) goto done;
    if (at > last_value && PyObject_SetAttr(state, s_last_at, at_obj) < 0) goto done;
    if (add_to_attr(state, s_events, 1) < 0) goto done;
    if (kind == CONTENT_READ) {
        if (add_to_attr(state, s_content_reads, 1) < 0) goto done;
    } else if (kind == CONTACT_MADE && inbound != Py_None) {
        int is_inbound = PyObject_IsTrue(inbound);
        if (is_inbound < 0) goto done;
        PyObject *contacts = PyObject_GetAttr(state, s_contacts);
        if (contacts == NULL) goto done;
        long flags = PyLong_AsLong(contacts);
        Py_DECREF(contacts);
        if (flags == -1 && PyErr_Occurred()) goto done;
        PyObject *next = PyLong_FromLong(flags | (is_inbound ? INBOUND : OUTBOUND));
        if (next == NULL) goto done;
        int set = PyObject_SetAttr(state, s_contacts, next);
        Py_DECREF(next);
        if (set < 0) goto done;
    }
    rc = 1;
done:
    Py_XDECREF(first_at);
    Py_DECREF(at_obj);
    return rc;
}

static int count_applied(Fold *f, int applied, int64_t at) {
    if (applied < 0) return -1;
    if (applied == 0) {
        f->duplicates++;
        return 0;
    }
    f->valid++;
    if (!f->has_mark || at > f->mark) {
        f->mark = at;
        f->has_mark = 1;
    }
    return 0;
}

/* A record the fast path left alone: `slow` (schemas.decode.decode) gives an Event or a Rejection. */
static int fold_slowly(Fold *f, PyObject *slow, PyObject *event_type, PyObject *raw) {
    PyObject *event = PyObject_CallOneArg(slow, raw);
    if (event == NULL) return -1;
    int rc;
    if (Py_TYPE(event) != (PyTypeObject *)event_type) {
        f->invalid++;
        rc = 0;
    } else if (PyTuple_GET_SIZE(event) != 5) {
        PyErr_SetString(PyExc_TypeError, "an Event has five fields");
        rc = -1;
    } else {
        /* Event(lead_id, event_id, type, occurred_at, inbound) */
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(event, 2));
        long long at = PyLong_AsLongLong(PyTuple_GET_ITEM(event, 3));
        if ((kind == -1 || at == -1) && PyErr_Occurred()) {
            rc = -1;
        } else {
            rc = count_applied(f, apply(f, PyTuple_GET_ITEM(event, 0), PyTuple_GET_ITEM(event, 1), kind, at, PyTuple_GET_ITEM(event, 4)), at);
        }
    }
    Py_DECREF(event);
    return rc;
}

/* fold(leads, records, decode, expected, slow, event_type, new_state, digest_of, max_bytes, version, watermark)
 *   -> (valid, duplicates, invalid, watermark)
 * `decode` is the msgspec decoder; exceptions of the classes in `expected` send a record to `slow`. */
static PyObject *fold(PyObject *module, PyObject *args) {
    PyObject *leads, *records, *decode, *expected, *slow, *event_type, *new_state, *digest_of, *watermark;
    Py_ssize_t max_bytes;
    long version;
    if (!PyArg_ParseTuple(args, "O!OOOOOOOnlO:fold", &PyDict_Type, &leads, &records, &decode, &expected, &slow, &event_type,
                          &new_state, &digest_of, &max_bytes, &version, &watermark))
        return NULL;
    Fold f = {leads, new_state, digest_of, 0, 0, 0, 0, 0};
    if (watermark != Py_None) {
        f.mark = PyLong_AsLongLong(watermark);
        if (f.mark == -1 && PyErr_Occurred()) return NULL;
        f.has_mark = 1;
    }
    PyObject *iterator = PyObject_GetIter(records);
    if (iterator == NULL) return NULL;
    PyObject *raw;
    while ((raw = PyIter_Next(iterator)) != NULL) {
        int rc = 0;
        PyObject *fast = NULL;
        if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) > max_bytes) {
            rc = fold_slowly(&f, slow, event_type, raw);
            goto next;
        }
        fast = PyObject_CallOneArg(decode, raw);
        if (fast == NULL) {
            if (!PyErr_ExceptionMatches(expected)) {
                rc = -1;
                goto next;
            }
            PyErr_Clear();
            rc = fold_slowly(&f, slow, event_type, raw);
            goto next;
        }
        PyObject *schema_version = PyObject_GetAttr(fast, s_schema_version);
        if (schema_version == NULL) {
            rc = -1;
            goto next;
        }
        int other_version = 0;
        if (schema_version != Py_None) {
            long v = PyLong_AsLong(schema_version);
            if (v == -1 && PyErr_Occurred()) PyErr_Clear();
            other_version = v != version;
        }
        Py_DECREF(schema_version);
        PyObject *text = PyObject_GetAttr(fast, s_occurred_at);
        if (text == NULL) {
            rc = -1;
            goto next;
        }
        int64_t at = 0;
        Py_ssize_t length = 0;
        const char *chars = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &length) : NULL;
        int timely = chars != NULL && parse_rfc3339(chars, length, &at);
        Py_DECREF(text);
        if (chars == NULL) PyErr_Clear();
        if (other_version || !timely) {
            rc = fold_slowly(&f, slow, event_type, raw);
            goto next;
        }
        PyObject *index = PyObject_GetAttr((PyObject *)Py_TYPE(fast), s_index);
        if (index == NULL) {
            rc = -1;
            goto next;
        }
        long kind = PyLong_AsLong(index);
        Py_DECREF(index);
        if (kind == -1 && PyErr_Occurred()) {
            rc = -1;
            goto next;
        }
        PyObject *lead = PyObject_GetAttr(fast, s_lead_id);
        PyObject *event_id = PyObject_GetAttr(fast, s_event_id);
        PyObject *inbound = PyObject_GetAttr(fast, s_inbound);
        if (lead == NULL || event_id == NULL || inbound == NULL) {
            rc = -1;
        } else {
            rc = count_applied(&f, apply(&f, lead, event_id, kind, at, inbound), at);
        }
        Py_XDECREF(lead);
        Py_XDECREF(event_id);
        Py_XDECREF(inbound);
    next:
        Py_XDECREF(fast);
        Py_DECREF(raw);
        if (rc < 0) break;
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) return NULL;
    PyObject *mark = f.has_mark ? PyLong_FromLongLong(f.mark) : Py_NewRef(Py_None);
    if (mark == NULL) return NULL;
    return Py_BuildValue("nnnN", f.valid, f.duplicates, f.invalid, mark);
}

/* ---- routing lines to replay processes ---- */

static uint64_t fnv1a(const char *s, Py_ssize_t n) {
    uint64_t h = 14695981039346656037ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int blank(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\x0b' && c != '\x0c') return 0;
    }
    return 1;
}

static const char KEY[] = "\"lead_id\"";
#define KEY_LEN ((Py_ssize_t)(sizeof(KEY) - 1))

/* The first `"lead_id"` in s[0:n], or NULL; cheaper than memmem for a short needle in a short line. */
static const char *find_key(const char *s, Py_ssize_t n) {
    const char *end = s + n;
    while (end - s >= KEY_LEN) {
        const char *quote = memchr(s, '"', end - s - KEY_LEN + 1);
        if (quote == NULL) return NULL;
        if (quote[1] == 'l' && memcmp(quote, KEY, KEY_LEN) == 0) return quote;
        s = quote + 1;
    }
    return NULL;
}

/* The lead id of a line straight from its bytes, when they leave no doubt: no escapes, one
 * "lead_id" token, followed at once by a string. 1 and the id's bytes, or 0 (ask JSON). */
static int lead_bytes(const char *s, Py_ssize_t n, const char **lead, Py_ssize_t *lead_n) {
    if (memchr(s, '\\', n) != NULL) return 0;
    const char *hit = find_key(s, n);
    if (hit == NULL) return 0;
    const char *after = hit + KEY_LEN;
    const char *end = s + n;
    if (find_key(after, end - after) != NULL) return 0;
    if (end - after < 2 || after[0] != ':' || after[1] != '"') return 0;
    const char *start = after + 2;
    const char *close = memchr(start, '"', end - start);
    if (close == NULL) return 0;
    *lead = start;
    *lead_n = close - start;
    return 1;
}

/* route(data, partitions, index, lead_of) -> the non-blank lines of `data` (CR LF or LF) whose
 * lead falls in partition `index`. `lead_of(line)` gives a line's lead id as JSON reads it, or
 * None: a line with no lead id is invalid, and partition 0 counts it. */
static PyObject *route(PyObject *module, PyObject *args) {
    Py_buffer data;
    Py_ssize_t partitions, index;
    PyObject *lead_of;
    if (!PyArg_ParseTuple(args, "y*nnO:route", &data, &partitions, &index, &lead_of)) return NULL;
    if (partitions < 1 || index < 0 || index >= partitions) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "route: index must be in 0..partitions-1");
        return NULL;
    }
    PyObject *mine = PyList_New(0);
    if (mine == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    const char *p = data.buf, *end = p + data.len;
    while (p < end) {
        const char *newline = memchr(p, '\n', end - p);
        const char *stop = newline ? newline : end;
        Py_ssize_t n = stop - p;
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n > 0 && !blank(p, n)) {
            const char *lead;
            Py_ssize_t lead_n;
            Py_ssize_t part = 0;
            PyObject *line = NULL;
            if (lead_bytes(p, n, &lead, &lead_n)) {
                part = (Py_ssize_t)(fnv1a(lead, lead_n) % (uint64_t)partitions);
            } else {
                line = PyBytes_FromStringAndSize(p, n);
                if (line == NULL) goto fail;
                PyObject *found = PyObject_CallOneArg(lead_of, line);
                if (found == NULL) {
                    Py_DECREF(line);
                    goto fail;
                }
                if (PyUnicode_Check(found)) {
                    PyObject *utf8 = PyUnicode_AsEncodedString(found, "utf-8", "surrogatepass");
                    if (utf8 == NULL) {
                        Py_DECREF(found);
                        Py_DECREF(line);
                        goto fail;
                    }
                    part = (Py_ssize_t)(fnv1a(PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8)) % (uint64_t)partitions);
                    Py_DECREF(utf8);
                }
                Py_DECREF(found);
            }
            if (part == index) {
                if (line == NULL) line = PyBytes_FromStringAndSize(p, n);
                if (line == NULL || PyList_Append(mine, line) < 0) {
                    Py_XDECREF(line);
                    goto fail;
                }
            }
            Py_XDECREF(line);
        }
        p = newline ? newline + 1 : end;
    }
    PyBuffer_Release(&data);
    return mine;
fail:
    PyBuffer_Release(&data);
    Py_DECREF(mine);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse_time", parse_time, METH_O, "parse_time(text) -> microseconds since the epoch; ValueError unless RFC 3339 with offset"},
    {"fold", fold, METH_VARARGS, "Fold records into lead states; see projections.projector"},
    {"route", route, METH_VARARGS, "The lines of a chunk that belong to one replay partition"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "projections._fold", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fold(void) {
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&s_seen, "seen"}, {&s_first_at, "first_at"}, {&s_last_at, "last_at"}, {&s_events, "events"},
        {&s_content_reads, "content_reads"}, {&s_contacts, "contacts"}, {&s_append, "append"},
        {&s_event_id, "event_id"}, {&s_lead_id, "lead_id"}, {&s_occurred_at, "occurred_at"},
        {&s_inbound, "inbound"}, {&s_schema_version, "schema_version"}, {&s_index, "index"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL) return NULL;
    }
    return PyModule_Create(&module_def);
}
