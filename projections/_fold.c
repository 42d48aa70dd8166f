/* The hot paths in C: replay's (projections.projector.CompactProjector, streams/replay/parallel.py) and the live worker's:
 *   - LeadTable: lead states packed one struct per lead, folded as
 *     `projections.lead.record` folds them, over whole lists of records, and
 *     their views and aggregates as `projections.lead.view` and
 *     `projections.report.aggregate` compute them;
 *   - the RFC 3339 check of schemas.events.parse_time;
 *   - route: the lines of a chunk that belong to one replay process, placed as Kafka's
 *     default partitioner places a record keyed by its lead id (projections.routing).
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
#include <structmember.h>
#include <math.h>
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

/* 1 and the microseconds since the epoch, or 0 when `s` is not a time the reference accepts (its reason
   is the model's: parse_time's own message is the common one, whichever check failed). */
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
    /* schemas.events.EARLIEST_MICROS and LATEST_MICROS: the UTC instant within years 0001-9999 */
    return *out >= -62135596800000000LL && *out <= 253402300799999999LL;
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

/* Howard Hinnant's algorithm again, backwards: the proleptic Gregorian date of a day since 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *year, int *month, int *day) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

/* RFC 3339 in UTC with microseconds, into `text` (32 bytes): its length, or -1 with OverflowError set. */
static int format_micros(long long micros, char *text) {
    const long long day_micros = 86400000000LL;
    long long days = micros / day_micros, rest = micros % day_micros;
    if (rest < 0) {
        rest += day_micros;
        days -= 1;
    }
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    if (year < 1 || year > 9999) {
        PyErr_SetString(PyExc_OverflowError, "date value out of range");
        return -1;
    }
    long long seconds = rest / 1000000;
    return snprintf(text, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", (int)year, month, day, (int)(seconds / 3600),
                    (int)(seconds / 60 % 60), (int)(seconds % 60), (int)(rest % 1000000));
}

static long long micros_of(PyObject *arg) {
    long long micros = PyLong_AsLongLong(arg);
    if (micros == -1 && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_OverflowError, "date value out of range");
    }
    return micros;
}

/* format_time(micros): schemas.events.format_time, RFC 3339 in UTC with microseconds. */
static PyObject *format_time(PyObject *module, PyObject *arg) {
    long long micros = micros_of(arg);
    if (micros == -1 && PyErr_Occurred())
        return NULL;
    char text[32];
    int n = format_micros(micros, text);
    return n < 0 ? NULL : PyUnicode_DecodeASCII(text, n, NULL);
}

/* ---- lead changes as JSON: streams.live.changes.LeadChange.encode, without a dict a change ----
 *
 * The bytes orjson.dumps(change.as_json()) gives (a test compares them):
 * compact, keys in as_json's order, strings escaped as orjson escapes them
 * (the short forms \" \\ \b \t \n \f \r, other control characters \u00xx,
 * everything else as UTF-8).
 */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Json;

static int json_room(Json *out, Py_ssize_t more) {
    if (out->len + more <= out->cap)
        return 0;
    Py_ssize_t cap = out->cap ? out->cap : 256;
    while (cap < out->len + more)
        cap *= 2;
    char *data = PyMem_Realloc(out->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->cap = cap;
    return 0;
}

static int json_raw(Json *out, const char *text, Py_ssize_t n) {
    if (json_room(out, n) < 0)
        return -1;
    memcpy(out->data + out->len, text, n);
    out->len += n;
    return 0;
}

#define JSON_LITERAL(out, text) json_raw((out), (text), (Py_ssize_t)(sizeof(text) - 1))

/* A str as a JSON string, None as null; `what` names it in the TypeError for anything else. */
static int json_str(Json *out, PyObject *value, const char *what) {
    if (value == Py_None)
        return JSON_LITERAL(out, "null");
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a lead change's %s must be str or None, not %.80s", what, Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(value, &n);
    if (text == NULL || json_room(out, 6 * n + 2) < 0)
        return -1;
    static const char hex[] = "0123456789abcdef";
    char *at = out->data + out->len;
    *at++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *at++ = (char)c;
            continue;
        }
        *at++ = '\\';
        switch (c) {
        case '"': *at++ = '"'; break;
        case '\\': *at++ = '\\'; break;
        case '\b': *at++ = 'b'; break;
        case '\t': *at++ = 't'; break;
        case '\n': *at++ = 'n'; break;
        case '\f': *at++ = 'f'; break;
        case '\r': *at++ = 'r'; break;
        default:
            *at++ = 'u';
            *at++ = '0';
            *at++ = '0';
            *at++ = hex[c >> 4];
            *at++ = hex[c & 15];
        }
    }
    *at++ = '"';
    out->len = at - out->data;
    return 0;
}

/* One LeadChange (lead_id, old_stage, old_qualification, new_stage, new_qualification, cause,
 * occurred_at, events) as JSON; its cause None (the watermark), a 1-tuple (new definitions: the
 * digest) or a 2-tuple (the event: id and type). */
static int json_lead_change(Json *out, PyObject *change) {
    if (!PyTuple_Check(change) || PyTuple_GET_SIZE(change) != 8) {
        PyErr_Format(PyExc_TypeError, "a lead change is a LeadChange, not %.80s", Py_TYPE(change)->tp_name);
        return -1;
    }
    if (!PyUnicode_Check(PyTuple_GET_ITEM(change, 0))) {
        PyErr_SetString(PyExc_TypeError, "a lead change's lead_id must be str");
        return -1;
    }
    PyObject *cause = PyTuple_GET_ITEM(change, 5);
    Py_ssize_t causes = PyTuple_Check(cause) ? PyTuple_GET_SIZE(cause) : 0;
    if (cause != Py_None && causes != 1 && causes != 2) {
        PyErr_SetString(PyExc_TypeError, "a lead change's cause is a Cause, NewDefinitions or None");
        return -1;
    }
    long long micros = micros_of(PyTuple_GET_ITEM(change, 6));
    if (micros == -1 && PyErr_Occurred())
        return -1;
    long long events = PyLong_AsLongLong(PyTuple_GET_ITEM(change, 7));
    if (events == -1 && PyErr_Occurred())
        return -1;
    char time[32], number[24];
    int time_n = format_micros(micros, time);
    if (time_n < 0)
        return -1;
    int number_n = snprintf(number, sizeof(number), "%lld", events);
    if (JSON_LITERAL(out, "{\"lead_id\":") < 0 || json_str(out, PyTuple_GET_ITEM(change, 0), "lead_id") < 0 ||
        JSON_LITERAL(out, ",\"old\":{\"stage\":") < 0 || json_str(out, PyTuple_GET_ITEM(change, 1), "old stage") < 0 ||
        JSON_LITERAL(out, ",\"qualification\":") < 0 || json_str(out, PyTuple_GET_ITEM(change, 2), "old qualification") < 0 ||
        JSON_LITERAL(out, "},\"new\":{\"stage\":") < 0 || json_str(out, PyTuple_GET_ITEM(change, 3), "new stage") < 0 ||
        JSON_LITERAL(out, ",\"qualification\":") < 0 || json_str(out, PyTuple_GET_ITEM(change, 4), "new qualification") < 0)
        return -1;
    if (cause == Py_None) {
        if (JSON_LITERAL(out, "},\"cause\":{\"watermark\":true") < 0)
            return -1;
    } else if (causes == 1) {
        if (JSON_LITERAL(out, "},\"cause\":{\"definitions\":") < 0 || json_str(out, PyTuple_GET_ITEM(cause, 0), "digest") < 0)
            return -1;
    } else if (JSON_LITERAL(out, "},\"cause\":{\"event_id\":") < 0 || json_str(out, PyTuple_GET_ITEM(cause, 0), "event_id") < 0 ||
               JSON_LITERAL(out, ",\"type\":") < 0 || json_str(out, PyTuple_GET_ITEM(cause, 1), "type") < 0) {
        return -1;
    }
    if (JSON_LITERAL(out, "},\"occurred_at\":\"") < 0 || json_raw(out, time, time_n) < 0 || JSON_LITERAL(out, "\",\"events\":") < 0 ||
        json_raw(out, number, number_n) < 0 || JSON_LITERAL(out, "}") < 0)
        return -1;
    return 0;
}

/* lead_change_records(changes): per change, its record for journey.lead-changes, (key, value, []):
 * aiokafka's record builder takes headers as a list, and only a list. */
static PyObject *lead_change_records(PyObject *module, PyObject *changes) {
    PyObject *seq = PySequence_Fast(changes, "lead_change_records takes a list of LeadChange");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *records = PyList_New(n);
    Json out = {NULL, 0, 0};
    if (records == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *change = PySequence_Fast_GET_ITEM(seq, i);
        out.len = 0;
        if (json_lead_change(&out, change) < 0)
            goto fail;
        PyObject *key = PyUnicode_AsUTF8String(PyTuple_GET_ITEM(change, 0));
        PyObject *value = key == NULL ? NULL : PyBytes_FromStringAndSize(out.data, out.len);
        PyObject *headers = value == NULL ? NULL : PyList_New(0);
        PyObject *record = headers == NULL ? NULL : PyTuple_Pack(3, key, value, headers);
        Py_XDECREF(key);
        Py_XDECREF(value);
        Py_XDECREF(headers);
        if (record == NULL)
            goto fail;
        PyList_SET_ITEM(records, i, record);
    }
    PyMem_Free(out.data);
    Py_DECREF(seq);
    return records;
fail:
    PyMem_Free(out.data);
    Py_XDECREF(records);
    Py_DECREF(seq);
    return NULL;
}

/* ---- the lead table: every lead's state in one C array ----
 *
 * The same state as projections.lead.LeadState, packed: a replay touches a
 * random lead per event, and a Python LeadState spreads over six objects
 * (the state, its list, its array, their ints), each a cache miss; here a
 * lead is one struct and one index slot.
 */

enum { N_TYPES = 7, CONTENT_READ = 1, CONTACT_MADE = 2, NEGOTIATION = 3, PURCHASE = 4, UPSELL = 5, IDENTIFIED = 6 };
enum { INBOUND = 1, OUTBOUND = 2 };
enum { LEAD = 0, MQL = 1, SAL = 2, SQL = 3, CUSTOMER = 4, N_LEVELS = 5 };
#define NO_INDEX (-1)
#define NONE_AT INT64_MIN
#define INLINE_SEEN 4
#define DAY_MICROS 86400000000LL

typedef struct {
    PyObject *currency; /* interned in the table */
    int64_t hundredths;
} Revenue;

typedef struct {
    PyObject *key; /* the lead id, a str */
    Py_hash_t hash;
    int64_t first_at[N_TYPES]; /* NONE_AT: no event of that type */
    int64_t last_at;
    uint64_t events, content_reads;
    uint32_t n_seen, capacity;
    int64_t *heap_seen; /* NULL while the digests fit inline */
    int64_t inline_seen[INLINE_SEEN];
    /* The first touch (projections.lead.LeadState.touch*): NULL until one. `touch` is the
     * (source, channel, campaign) tuple, interned in the table: touches repeat across leads. */
    int64_t touch_at;
    PyObject *touch_id, *touch;
    PyObject *touch_owner; /* in a person's state, the anonymous id the first touch is of; NULL: the lead's own */
    Revenue *revenue;      /* per currency, in hundredths; NULL until one */
    uint32_t n_revenue, revenue_capacity;
    uint8_t contacts;
    uint8_t absorbed; /* an anonymous id whose facts were merged into the lead it joined (`absorb`) */
} Lead;

typedef struct {
    PyObject_HEAD
    Lead *leads;
    Py_ssize_t n, allocated;
    uint32_t *index; /* lead position + 1, or 0 for an empty slot */
    size_t mask;
    PyObject *interned; /* touches and currencies, each kept once */
} LeadTable;

static PyObject *s_event_id, *s_lead_id, *s_occurred_at, *s_inbound, *s_schema_version, *s_index;
static PyObject *s_source, *s_channel, *s_campaign, *s_currency, *s_amount, *s_no_currency, *s_anonymous_id;

static int table_grow_index(LeadTable *t) {
    size_t size = t->index ? (t->mask + 1) * 2 : 1024;
    uint32_t *index = PyMem_Calloc(size, sizeof(uint32_t));
    if (index == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->n; i++) {
        size_t slot = (size_t)t->leads[i].hash & (size - 1);
        while (index[slot]) slot = (slot + 1) & (size - 1);
        index[slot] = (uint32_t)(i + 1);
    }
    PyMem_Free(t->index);
    t->index = index;
    t->mask = size - 1;
    return 0;
}

/* The lead of `key`, added when new; NULL with an exception set on error. */
static Lead *table_lead(LeadTable *t, PyObject *key) {
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "a lead id must be a str");
        return NULL;
    }
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return NULL;
    if (t->index == NULL && table_grow_index(t) < 0) return NULL;
    size_t slot = (size_t)hash & t->mask;
    uint32_t at;
    while ((at = t->index[slot]) != 0) {
        Lead *lead = &t->leads[at - 1];
        if (lead->hash == hash) {
            if (lead->key == key) return lead;
            int order = PyUnicode_Compare(lead->key, key);
            if (order == 0) return lead;
            if (order == -1 && PyErr_Occurred()) return NULL;
        }
        slot = (slot + 1) & t->mask;
    }
    if (t->n >= (Py_ssize_t)UINT32_MAX - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many leads for one replay process");
        return NULL;
    }
    if (t->n == t->allocated) {
        Py_ssize_t allocated = t->allocated ? t->allocated * 2 : 1024;
        Lead *leads = PyMem_Realloc(t->leads, (size_t)allocated * sizeof(Lead));
        if (leads == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        t->leads = leads;
        t->allocated = allocated;
    }
    Lead *lead = &t->leads[t->n];
    memset(lead, 0, sizeof(Lead));
    Py_INCREF(key);
    lead->key = key;
    lead->hash = hash;
    for (int k = 0; k < N_TYPES; k++) lead->first_at[k] = NONE_AT;
    lead->last_at = NONE_AT; /* as LeadState: before any event (occurred_at may be before 1970) */
    t->index[slot] = (uint32_t)(++t->n);
    if ((size_t)t->n * 2 > t->mask + 1 && table_grow_index(t) < 0) return NULL;
    return &t->leads[t->n - 1];
}

static int64_t *lead_seen(Lead *lead) { return lead->heap_seen ? lead->heap_seen : lead->inline_seen; }

/* What `record` does: 1 applied, 0 a duplicate, -1 error. `inbound`: -1 absent, 0 false, 1 true. */
static int lead_record(Lead *lead, int64_t digest, long kind, int64_t at, int inbound) {
    int64_t *seen = lead_seen(lead);
    for (uint32_t i = 0; i < lead->n_seen; i++)
        if (seen[i] == digest) return 0;
    if (lead->n_seen == INLINE_SEEN && lead->heap_seen == NULL) {
        int64_t *heap = PyMem_Malloc(2 * INLINE_SEEN * sizeof(int64_t));
        if (heap == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(heap, lead->inline_seen, sizeof(lead->inline_seen));
        lead->heap_seen = heap;
        lead->capacity = 2 * INLINE_SEEN;
    } else if (lead->heap_seen != NULL && lead->n_seen == lead->capacity) {
        int64_t *heap = PyMem_Realloc(lead->heap_seen, 2 * (size_t)lead->capacity * sizeof(int64_t));
        if (heap == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        lead->heap_seen = heap;
        lead->capacity *= 2;
    }
    lead_seen(lead)[lead->n_seen++] = digest;
    if (lead->first_at[kind] == NONE_AT || at < lead->first_at[kind]) lead->first_at[kind] = at;
    if (at > lead->last_at) lead->last_at = at;
    lead->events++;
    if (kind == CONTENT_READ) {
        lead->content_reads++;
    } else if (kind == CONTACT_MADE && inbound >= 0) {
        lead->contacts |= inbound ? INBOUND : OUTBOUND;
    }
    return 1;
}

/* `value`, or the equal object the table already keeps (a new reference); NULL on error. */
static PyObject *table_intern(LeadTable *t, PyObject *value) {
    if (t->interned == NULL && (t->interned = PyDict_New()) == NULL) return NULL;
    PyObject *kept = PyDict_SetDefault(t->interned, value, value);
    return kept == NULL ? NULL : Py_NewRef(kept);
}

static int lead_add_revenue(Lead *lead, PyObject *name, int64_t hundredths);

/* What `record` does with an applied event's attribution fields (projections.lead.record). */
static int lead_attribute(LeadTable *t, Lead *lead, PyObject *event_id, int64_t at, long kind, PyObject *source, PyObject *channel,
                          PyObject *campaign, PyObject *currency, PyObject *amount) {
    if (source != Py_None || channel != Py_None || campaign != Py_None) {
        int earlier = lead->touch == NULL || lead->touch_id == NULL || at < lead->touch_at;
        if (!earlier && at == lead->touch_at) {
            int order = PyUnicode_Compare(event_id, lead->touch_id); /* by code point, as Python compares str */
            if (order == -1 && PyErr_Occurred()) return -1;
            earlier = order < 0;
        }
        if (earlier) {
            PyObject *fresh = PyTuple_Pack(3, source, channel, campaign);
            if (fresh == NULL) return -1;
            PyObject *touch = table_intern(t, fresh);
            Py_DECREF(fresh);
            if (touch == NULL) return -1;
            Py_XSETREF(lead->touch, touch);
            Py_XSETREF(lead->touch_id, Py_NewRef(event_id));
            lead->touch_at = at;
        }
    }
    if (amount == Py_None || (kind != PURCHASE && kind != UPSELL)) return 0;
    double value = PyFloat_AsDouble(amount);
    if (value == -1.0 && PyErr_Occurred()) return -1;
    int64_t hundredths = (int64_t)nearbyint(value * 100.0); /* round half even, as Python's round() of a float */
    PyObject *name = table_intern(t, currency == Py_None ? s_no_currency : currency);
    if (name == NULL) return -1;
    return lead_add_revenue(lead, name, hundredths); /* takes `name` */
}

#define REVENUE_PAST_LIMIT "a person's revenue in one currency would pass 92233720368547758.07, the most journey keeps"

/* `hundredths` more revenue in currency `name` (interned; the lead takes the reference): 0, or -1 on error
   (OverflowError past int64 hundredths, as the Python reference and the stored lead layout refuse). */
static int lead_add_revenue(Lead *lead, PyObject *name, int64_t hundredths) {
    for (uint32_t i = 0; i < lead->n_revenue; i++) {
        if (lead->revenue[i].currency == name) {
            Py_DECREF(name);
            if (__builtin_add_overflow(lead->revenue[i].hundredths, hundredths, &lead->revenue[i].hundredths)) {
                PyErr_SetString(PyExc_OverflowError, REVENUE_PAST_LIMIT); /* projections.lead.REVENUE_PAST_LIMIT */
                return -1;
            }
            return 0;
        }
    }
    if (lead->n_revenue == UINT32_MAX) { /* a currency per event of a lead, past 4 billion events: never in a log */
        Py_DECREF(name);
        PyErr_SetString(PyExc_OverflowError, "a lead with revenue in more than 4294967295 currencies");
        return -1;
    }
    if (lead->n_revenue == lead->revenue_capacity) {
        uint32_t capacity = lead->revenue_capacity ? (lead->revenue_capacity > UINT32_MAX / 2 ? UINT32_MAX : lead->revenue_capacity * 2) : 1;
        Revenue *grown = PyMem_Realloc(lead->revenue, (size_t)capacity * sizeof(Revenue));
        if (grown == NULL) {
            Py_DECREF(name);
            PyErr_NoMemory();
            return -1;
        }
        lead->revenue = grown;
        lead->revenue_capacity = capacity;
    }
    lead->revenue[lead->n_revenue].currency = name; /* the table's reference, owned by the lead */
    lead->revenue[lead->n_revenue].hundredths = hundredths;
    lead->n_revenue++;
    return 0;
}

typedef struct Live Live; /* the live worker's batch fold, below; NULL in a replay */

typedef struct {
    LeadTable *table;
    PyObject *digest_of;   /* xxhash.xxh3_64_intdigest */
    PyObject *anon_prefix; /* an anonymous id's owner key is this + the id (projections.identity.anon_key) */
    PyObject *links;       /* a list: (anonymous id, occurred_at, event id, lead id, type) per link applied */
    int64_t mark;
    int has_mark;
    Py_ssize_t valid, duplicates, invalid;
    Live *live;
    int64_t offset; /* of the record being folded (live only) */
} Fold;

static int live_touch(Fold *f, Lead *lead, int new_lead);
static void live_applied(Fold *f, Lead *lead, PyObject *event_id, long kind, int64_t at);
static void live_duplicate(Fold *f, Lead *lead);
static int live_rejected(Fold *f, PyObject *rejection, PyObject *raw);

/* The attribution fields of an event: source, channel, campaign, currency, amount (None: absent). */
typedef struct {
    PyObject *fields[5];
} AttributionFields;

/* The owner key of an event: its lead id, else its anonymous id's key (a new reference; NULL on error). */
static PyObject *owner_key(Fold *f, PyObject *lead_id, PyObject *anonymous_id) {
    if (lead_id != Py_None) return Py_NewRef(lead_id);
    if (!PyUnicode_Check(anonymous_id)) {
        PyErr_SetString(PyExc_TypeError, "an event without a lead id needs an anonymous id, a str");
        return NULL;
    }
    return PyUnicode_Concat(f->anon_prefix, anonymous_id);
}

/* A link applied: (anonymous id, occurred_at, event id, lead id, type) on f->links (projections.identity.LinkRecord). */
static int add_link(Fold *f, PyObject *lead_id, PyObject *anonymous_id, PyObject *event_id, int64_t at, long kind) {
    PyObject *link = Py_BuildValue("(OLOOl)", anonymous_id, (long long)at, event_id, lead_id, kind);
    if (link == NULL) return -1;
    int rc = PyList_Append(f->links, link);
    Py_DECREF(link);
    return rc;
}

/* One valid event (`lead_id` None: anonymous, owned by `anonymous_id`); -1 on error. */
static int fold_event(Fold *f, PyObject *lead_id, PyObject *anonymous_id, PyObject *event_id, long kind, int64_t at, PyObject *inbound,
                      AttributionFields *extra) {
    if (kind < 0 || kind >= N_TYPES) {
        PyErr_Format(PyExc_ValueError, "event type index %ld out of range", kind);
        return -1;
    }
    if (!PyUnicode_Check(event_id)) {
        PyErr_SetString(PyExc_TypeError, "an event id must be a str");
        return -1;
    }
    int flag = -1;
    if (inbound != Py_None) {
        flag = PyObject_IsTrue(inbound);
        if (flag < 0) return -1;
    }
    Py_ssize_t known = f->table->n;
    PyObject *key = owner_key(f, lead_id, anonymous_id);
    if (key == NULL) return -1;
    Lead *lead = table_lead(f->table, key);
    Py_DECREF(key);
    if (lead == NULL) return -1;
    if (f->live != NULL) {
        int fresh = live_touch(f, lead, f->table->n > known);
        if (fresh <= 0) return fresh; /* -1 an error, 0 already applied at this offset */
    }
    PyObject *encoded = PyUnicode_AsUTF8String(event_id);
    if (encoded == NULL) return -1;
    PyObject *hashed = PyObject_CallOneArg(f->digest_of, encoded);
    Py_DECREF(encoded);
    if (hashed == NULL) return -1;
    unsigned long long raw = PyLong_AsUnsignedLongLong(hashed);
    Py_DECREF(hashed);
    if (raw == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    int64_t digest = (int64_t)(raw ^ (1ULL << 63)); /* xxh3 - 2**63, as event_digest() gives it */
    int applied = lead_record(lead, digest, kind, at, flag);
    if (applied < 0) return -1;
    if (applied == 0) {
        f->duplicates++;
        if (f->live != NULL) live_duplicate(f, lead);
        return 0;
    }
    PyObject **x = extra->fields;
    if (lead_attribute(f->table, lead, event_id, at, kind, x[0], x[1], x[2], x[3], x[4]) < 0) return -1;
    if (f->live != NULL) live_applied(f, lead, event_id, kind, at);
    if (lead_id != Py_None && anonymous_id != Py_None && add_link(f, lead_id, anonymous_id, event_id, at, kind) < 0) return -1;
    f->valid++;
    if (!f->has_mark || at > f->mark) {
        f->mark = at;
        f->has_mark = 1;
    }
    return 0;
}

/* ---- fields of a decoded schemas.fast.FastEvent ----
 *
 * msgspec keeps a struct's fields in slots (member descriptors at fixed offsets).
 * Through the generic attribute lookup each read cost about 140 ns, a sixth of a
 * replay once attribution read five more fields; `use_struct` resolves the offsets
 * once, and `field` reads the slot, for instances of that class and its subclasses
 * (the tagged event types add no fields). Anything else goes through getattr.
 */
enum { F_EVENT_ID, F_LEAD_ID, F_OCCURRED_AT, F_INBOUND, F_SCHEMA_VERSION, F_SOURCE, F_CHANNEL, F_CAMPAIGN, F_CURRENCY, F_AMOUNT, F_ANONYMOUS_ID, N_FIELDS };
static PyObject **const field_names[N_FIELDS] = {&s_event_id, &s_lead_id, &s_occurred_at, &s_inbound, &s_schema_version, &s_source,
                                                 &s_channel, &s_campaign, &s_currency, &s_amount, &s_anonymous_id};
static PyTypeObject *fast_type = NULL;
static Py_ssize_t field_offset[N_FIELDS];

/* use_struct(cls): read the fields of instances of `cls` straight from their slots. */
static PyObject *use_struct(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "use_struct takes a class");
        return NULL;
    }
    Py_ssize_t offsets[N_FIELDS];
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject *descr = PyObject_GetAttr(cls, *field_names[i]);
        if (descr == NULL) return NULL;
        int slot = Py_TYPE(descr) == &PyMemberDescr_Type && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (slot) offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
        if (!slot) {
            PyErr_Format(PyExc_TypeError, "use_struct: field %R is not an object slot", *field_names[i]);
            return NULL;
        }
    }
    memcpy(field_offset, offsets, sizeof(offsets));
    Py_XSETREF(fast_type, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

/* Whether `field` may read `obj`'s slots: checked once per record (the check walks the MRO). */
static int has_slots(PyObject *obj) { return fast_type != NULL && PyObject_TypeCheck(obj, fast_type); }

/* A field of a decoded event (a new reference), or NULL with an exception set. */
static PyObject *field(PyObject *obj, int slots, int i) {
    if (slots) {
        PyObject *value = *(PyObject **)((char *)obj + field_offset[i]);
        if (value != NULL) return Py_NewRef(value);
    }
    return PyObject_GetAttr(obj, *field_names[i]);
}

/* How records are decoded, from a projections.projector.Decoding (or FoldSetup): read once per call. */
typedef struct {
    PyObject *decode, *expected, *slow, *event_type, *digest_of, *anon_prefix;
    Py_ssize_t max_bytes;
    long version;
} Decoding;

static void decoding_release(Decoding *d) {
    Py_CLEAR(d->decode);
    Py_CLEAR(d->expected);
    Py_CLEAR(d->slow);
    Py_CLEAR(d->event_type);
    Py_CLEAR(d->digest_of);
    Py_CLEAR(d->anon_prefix);
}

static int decoding_read(PyObject *setup, Decoding *d) {
    memset(d, 0, sizeof(Decoding));
    struct {
        const char *name;
        PyObject **slot;
    } objects[] = {{"decode", &d->decode}, {"expected", &d->expected}, {"slow", &d->slow}, {"event_type", &d->event_type},
                   {"digest_of", &d->digest_of}, {"anon_prefix", &d->anon_prefix}};
    for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++)
        if ((*objects[i].slot = PyObject_GetAttrString(setup, objects[i].name)) == NULL) goto fail;
    if (!PyUnicode_Check(d->anon_prefix)) {
        PyErr_SetString(PyExc_TypeError, "anon_prefix is a str");
        goto fail;
    }
    PyObject *value = PyObject_GetAttrString(setup, "max_bytes");
    if (value == NULL) goto fail;
    d->max_bytes = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    if (d->max_bytes == -1 && PyErr_Occurred()) goto fail;
    value = PyObject_GetAttrString(setup, "version");
    if (value == NULL) goto fail;
    d->version = PyLong_AsLong(value);
    Py_DECREF(value);
    if (d->version == -1 && PyErr_Occurred()) goto fail;
    return 0;
fail:
    decoding_release(d);
    return -1;
}

/* A record the fast path left alone: `slow` (schemas.decode.decode) gives an Event or a Rejection. */
static int fold_slowly(Fold *f, PyObject *slow, PyObject *event_type, PyObject *raw) {
    PyObject *event = PyObject_CallOneArg(slow, raw);
    if (event == NULL) return -1;
    int rc = 0;
    if (Py_TYPE(event) != (PyTypeObject *)event_type) {
        if (f->live != NULL)
            rc = live_rejected(f, event, raw);
        else
            f->invalid++;
    } else if (PyTuple_GET_SIZE(event) != 11) {
        PyErr_SetString(PyExc_TypeError, "an Event has eleven fields");
        rc = -1;
    } else { /* Event(lead_id, event_id, type, occurred_at, inbound, source, channel, campaign, currency, amount, anonymous_id) */
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(event, 2));
        long long at = PyLong_AsLongLong(PyTuple_GET_ITEM(event, 3));
        AttributionFields extra;
        for (int i = 0; i < 5; i++) extra.fields[i] = PyTuple_GET_ITEM(event, 5 + i);
        if ((kind == -1 || at == -1) && PyErr_Occurred())
            rc = -1;
        else
            rc = fold_event(f, PyTuple_GET_ITEM(event, 0), PyTuple_GET_ITEM(event, 10), PyTuple_GET_ITEM(event, 1), kind, at,
                            PyTuple_GET_ITEM(event, 4), &extra);
    }
    Py_DECREF(event);
    return rc;
}

/* One record: decoded by msgspec and checked here, or handed to `slow`. */
static int fold_record(Fold *f, PyObject *raw, const Decoding *d) {
    PyObject *decode = d->decode, *expected = d->expected, *slow = d->slow, *event_type = d->event_type;
    Py_ssize_t max_bytes = d->max_bytes;
    long version = d->version;
    if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) > max_bytes) return fold_slowly(f, slow, event_type, raw);
    PyObject *fast = PyObject_CallOneArg(decode, raw);
    if (fast == NULL) {
        if (!PyErr_ExceptionMatches(expected)) return -1;
        PyErr_Clear();
        return fold_slowly(f, slow, event_type, raw);
    }
    int rc = -1;
    PyObject *lead_id = NULL, *anonymous_id = NULL, *event_id = NULL, *inbound = NULL;
    AttributionFields extra = {{NULL, NULL, NULL, NULL, NULL}};
    int slots = has_slots(fast);
    PyObject *schema_version = field(fast, slots, F_SCHEMA_VERSION);
    if (schema_version == NULL) goto done;
    int other_version = 0;
    if (schema_version != Py_None) {
        long v = PyLong_AsLong(schema_version);
        if (v == -1 && PyErr_Occurred()) PyErr_Clear(); /* too large for a long: not this version */
        other_version = v != version;
    }
    Py_DECREF(schema_version);
    PyObject *text = field(fast, slots, F_OCCURRED_AT);
    if (text == NULL) goto done;
    int64_t at = 0;
    Py_ssize_t length = 0;
    const char *chars = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &length) : NULL;
    if (chars == NULL) PyErr_Clear(); /* lone surrogates: the model says why */
    int timely = chars != NULL && parse_rfc3339(chars, length, &at);
    Py_DECREF(text);
    if (other_version || !timely) {
        rc = fold_slowly(f, slow, event_type, raw);
        goto done;
    }
    PyObject *index = PyObject_GetAttr((PyObject *)Py_TYPE(fast), s_index);
    if (index == NULL) goto done;
    long kind = PyLong_AsLong(index);
    Py_DECREF(index);
    if (kind == -1 && PyErr_Occurred()) goto done;
    lead_id = field(fast, slots, F_LEAD_ID);
    anonymous_id = field(fast, slots, F_ANONYMOUS_ID);
    event_id = field(fast, slots, F_EVENT_ID);
    inbound = field(fast, slots, F_INBOUND);
    int complete = lead_id != NULL && anonymous_id != NULL && event_id != NULL && inbound != NULL;
    for (int i = 0; i < 5 && complete; i++) complete = (extra.fields[i] = field(fast, slots, F_SOURCE + i)) != NULL;
    if (!complete) goto done;
    if ((lead_id == Py_None && (anonymous_id == Py_None || kind == IDENTIFIED)) || (kind == IDENTIFIED && anonymous_id == Py_None))
        rc = fold_slowly(f, slow, event_type, raw); /* no owner, or a link without both ids: the model says why */
    else
        rc = fold_event(f, lead_id, anonymous_id, event_id, kind, at, inbound, &extra);
done:
    Py_XDECREF(lead_id);
    Py_XDECREF(anonymous_id);
    Py_XDECREF(event_id);
    Py_XDECREF(inbound);
    for (int i = 0; i < 5; i++) Py_XDECREF(extra.fields[i]);
    Py_DECREF(fast);
    return rc;
}

/* fold(records, decoding, watermark, links) -> (valid, duplicates, invalid, watermark): `decoding` is a
 * projections.projector.Decoding; each link applied is appended to the list `links`. */
static PyObject *table_fold(LeadTable *self, PyObject *args) {
    PyObject *records, *setup, *watermark, *links;
    if (!PyArg_ParseTuple(args, "OOOO!:fold", &records, &setup, &watermark, &PyList_Type, &links)) return NULL;
    Decoding d;
    if (decoding_read(setup, &d) < 0) return NULL;
    Fold f = {self, d.digest_of, d.anon_prefix, links, 0, 0, 0, 0, 0, NULL, 0};
    if (watermark != Py_None) {
        f.mark = PyLong_AsLongLong(watermark);
        if (f.mark == -1 && PyErr_Occurred()) goto fail;
        f.has_mark = 1;
    }
    PyObject *iterator = PyObject_GetIter(records);
    if (iterator == NULL) goto fail;
    PyObject *raw;
    while ((raw = PyIter_Next(iterator)) != NULL) {
        int rc = fold_record(&f, raw, &d);
        Py_DECREF(raw);
        if (rc < 0) break;
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) goto fail;
    decoding_release(&d);
    PyObject *mark = f.has_mark ? PyLong_FromLongLong(f.mark) : Py_NewRef(Py_None);
    if (mark == NULL) return NULL;
    return Py_BuildValue("nnnN", f.valid, f.duplicates, f.invalid, mark);
fail:
    decoding_release(&d);
    return NULL;
}

/* A lead's revenue as {currency: hundredths}, or None when it has none (a new reference). */
static PyObject *lead_revenue(Lead *lead) {
    if (lead->n_revenue == 0) return Py_NewRef(Py_None);
    PyObject *revenue = PyDict_New();
    if (revenue == NULL) return NULL;
    for (uint32_t i = 0; i < lead->n_revenue; i++) {
        PyObject *amount = PyLong_FromLongLong(lead->revenue[i].hundredths);
        int rc = amount == NULL ? -1 : PyDict_SetItem(revenue, lead->revenue[i].currency, amount);
        Py_XDECREF(amount);
        if (rc < 0) {
            Py_DECREF(revenue);
            return NULL;
        }
    }
    return revenue;
}

/* states(make) -> {owner key: make(first_at, last_at, events, content_reads, contacts, seen_bytes,
 *                               touch_at, touch_id, touch, touch_owner, revenue)}, in first-seen order;
 *   absorbed anonymous ids are left out (their facts are in the lead they joined) */
static PyObject *table_states(LeadTable *self, PyObject *make) {
    PyObject *states = PyDict_New();
    if (states == NULL) return NULL;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Lead *lead = &self->leads[i];
        if (lead->absorbed) continue;
        PyObject *first_at = PyList_New(N_TYPES);
        if (first_at == NULL) goto fail;
        for (int k = 0; k < N_TYPES; k++) {
            PyObject *at = lead->first_at[k] == NONE_AT ? Py_NewRef(Py_None) : PyLong_FromLongLong(lead->first_at[k]);
            if (at == NULL) {
                Py_DECREF(first_at);
                goto fail;
            }
            PyList_SET_ITEM(first_at, k, at);
        }
        PyObject *revenue = lead_revenue(lead);
        if (revenue == NULL) {
            Py_DECREF(first_at);
            goto fail;
        }
        PyObject *touch_at = lead->touch == NULL ? Py_NewRef(Py_None) : PyLong_FromLongLong(lead->touch_at);
        if (touch_at == NULL) {
            Py_DECREF(first_at);
            Py_DECREF(revenue);
            goto fail;
        }
        PyObject *state = PyObject_CallFunction(make, "NLKKIy#NOOON", first_at, (long long)lead->last_at, (unsigned long long)lead->events,
                                                (unsigned long long)lead->content_reads, (unsigned int)lead->contacts, (const char *)lead_seen(lead),
                                                (Py_ssize_t)(lead->n_seen * sizeof(int64_t)), touch_at, lead->touch_id ? lead->touch_id : Py_None,
                                                lead->touch ? lead->touch : Py_None, lead->touch_owner ? lead->touch_owner : Py_None, revenue);
        if (state == NULL) goto fail;
        int rc = PyDict_SetItem(states, lead->key, state);
        Py_DECREF(state);
        if (rc < 0) goto fail;
    }
    return states;
fail:
    Py_DECREF(states);
    return NULL;
}

/* ---- views and aggregates of the whole table (projections.lead.view, projections.report.aggregate) ---- */

typedef struct {
    int64_t day;
    int64_t *counts;
} DayRow;

typedef struct {
    DayRow *rows;
    size_t n, allocated;
    int steps;
} Days;

static int64_t floor_day(int64_t at) {
    int64_t day = at / DAY_MICROS;
    return (at % DAY_MICROS != 0 && at < 0) ? day - 1 : day;
}

/* The row of `day`; days are few (one per calendar day of the log), so a linear search from the last hit. */
static int64_t *days_row(Days *days, int64_t day, size_t *hint) {
    if (*hint < days->n && days->rows[*hint].day == day) return days->rows[*hint].counts;
    for (size_t i = 0; i < days->n; i++) {
        if (days->rows[i].day == day) {
            *hint = i;
            return days->rows[i].counts;
        }
    }
    if (days->n == days->allocated) {
        size_t allocated = days->allocated ? days->allocated * 2 : 64;
        DayRow *rows = PyMem_Realloc(days->rows, allocated * sizeof(DayRow));
        if (rows == NULL) return NULL;
        days->rows = rows;
        days->allocated = allocated;
    }
    int64_t *counts = PyMem_Calloc((size_t)days->steps, sizeof(int64_t));
    if (counts == NULL) return NULL;
    days->rows[days->n].day = day;
    days->rows[days->n].counts = counts;
    *hint = days->n++;
    return counts;
}

static void days_free(Days *days) {
    for (size_t i = 0; i < days->n; i++) PyMem_Free(days->rows[i].counts);
    PyMem_Free(days->rows);
}

static PyObject *counts_list(const int64_t *counts, int n) {
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *value = PyLong_FromLongLong(counts[i]);
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return list;
}

static PyObject *days_dict(Days *days) {
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    for (size_t i = 0; i < days->n; i++) {
        PyObject *day = PyLong_FromLongLong(days->rows[i].day);
        PyObject *row = counts_list(days->rows[i].counts, days->steps);
        int rc = (day == NULL || row == NULL) ? -1 : PyDict_SetItem(dict, day, row);
        Py_XDECREF(day);
        Py_XDECREF(row);
        if (rc < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    return dict;
}

static int read_groups(PyObject *seq, int *out, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != N_TYPES) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: one entry per event type", what);
        return -1;
    }
    for (int k = 0; k < N_TYPES; k++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, k));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        if (v < NO_INDEX || v >= N_TYPES) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_ValueError, "%s: index %ld out of range", what, v);
            return -1;
        }
        out[k] = (int)v;
    }
    Py_DECREF(fast);
    return 0;
}

/* groups[key] += increment, for an int counter. */
static int count_in(PyObject *groups, PyObject *key, long long increment) {
    PyObject *have = PyDict_GetItemWithError(groups, key);
    if (have == NULL && PyErr_Occurred()) return -1;
    long long now = increment;
    if (have != NULL) {
        now += PyLong_AsLongLong(have);
        if (now == -1 && PyErr_Occurred()) return -1;
    }
    PyObject *value = PyLong_FromLongLong(now);
    if (value == NULL) return -1;
    int rc = PyDict_SetItem(groups, key, value);
    Py_DECREF(value);
    return rc;
}

/* One lead into the attribution groups of table_aggregate. */
static int attribute(PyObject *groups, PyObject *revenues, Lead *lead, int funnel_step, int customer) {
    PyObject *touch = lead->touch ? lead->touch : Py_None;
    PyObject *key = Py_BuildValue("(OiO)", touch, funnel_step, customer ? Py_True : Py_False);
    if (key == NULL) return -1;
    int rc = count_in(groups, key, 1);
    Py_DECREF(key);
    for (uint32_t i = 0; rc == 0 && i < lead->n_revenue; i++) {
        key = PyTuple_Pack(2, touch, lead->revenue[i].currency);
        if (key == NULL) return -1;
        PyObject *sums = PyDict_GetItemWithError(revenues, key);
        if (sums == NULL && !PyErr_Occurred()) {
            sums = Py_BuildValue("[LL]", 0LL, 0LL);
            if (sums != NULL && PyDict_SetItem(revenues, key, sums) < 0) Py_CLEAR(sums);
            Py_XDECREF(sums); /* the dict holds it now */
        }
        if (sums == NULL) {
            Py_DECREF(key);
            return -1;
        }
        for (int j = 0; j < 2 && rc == 0; j++) { /* exact past int64, as the reference's Python ints: summed as PyLongs */
            PyObject *add = PyLong_FromLongLong(j == 0 ? lead->revenue[i].hundredths : 1);
            PyObject *now = add == NULL ? NULL : PyNumber_Add(PyList_GET_ITEM(sums, j), add);
            Py_XDECREF(add);
            if (now == NULL) {
                rc = -1;
                break;
            }
            PyList_SetItem(sums, j, now); /* steals `now` */
        }
        Py_DECREF(key);
    }
    return rc;
}

/* ---- what the definitions make of a lead (projections.lead.view, apart from the watermark) ---- */

typedef struct {
    int stage_of_type[N_TYPES], step_of_type[N_TYPES];
    int n_stages, n_steps;
    long long mql_min, stale_after;
} Defs;

static int read_defs(PyObject *stage_seq, PyObject *step_seq, int n_stages, int n_steps, long long mql_min, long long stale_after, Defs *d) {
    if (read_groups(stage_seq, d->stage_of_type, "stage_of_type") < 0 || read_groups(step_seq, d->step_of_type, "step_of_type") < 0)
        return -1;
    if (n_stages < 0 || n_stages > N_TYPES || n_steps < 0 || n_steps > N_TYPES) {
        PyErr_SetString(PyExc_ValueError, "at most one stage and one step per event type");
        return -1;
    }
    for (int k = 0; k < N_TYPES; k++) {
        if (d->stage_of_type[k] >= n_stages || d->step_of_type[k] >= n_steps) {
            PyErr_SetString(PyExc_ValueError, "a type's stage or step is past the last one");
            return -1;
        }
    }
    d->n_stages = n_stages;
    d->n_steps = n_steps;
    d->mql_min = mql_min;
    d->stale_after = stale_after;
    return 0;
}

typedef struct {
    int stage, funnel_step, level; /* NO_INDEX: no stage, no step; level: the standing, before staleness */
    int64_t entered;               /* when the lead entered its stage (when it has one) */
    int64_t reach[N_TYPES];        /* per step up to funnel_step, when the lead reached it */
    int64_t stages[N_TYPES];       /* per stage, when the lead entered it (SPEC §10); NONE_AT: not entered */
} Shape;

static void lead_shape(const Lead *lead, const Defs *d, Shape *out) {
    int stage = NO_INDEX, funnel_step = NO_INDEX;
    int64_t entered = 0, step_first[N_TYPES];
    for (int s = 0; s < N_TYPES; s++) step_first[s] = out->stages[s] = NONE_AT;
    for (int k = 0; k < N_TYPES; k++) {
        int64_t at = lead->first_at[k];
        if (at == NONE_AT) continue;
        int group = d->stage_of_type[k];
        if (group != NO_INDEX && (out->stages[group] == NONE_AT || at < out->stages[group])) out->stages[group] = at;
        if (group > stage) {
            stage = group;
            entered = at;
        } else if (group == stage && group != NO_INDEX && at < entered) {
            entered = at;
        }
        int step = d->step_of_type[k];
        if (step != NO_INDEX) {
            if (step > funnel_step) funnel_step = step;
            if (step_first[step] == NONE_AT || at < step_first[step]) step_first[step] = at;
        }
    }
    const int64_t *first = lead->first_at;
    if (first[PURCHASE] != NONE_AT || first[UPSELL] != NONE_AT)
        out->level = CUSTOMER;
    else if (first[NEGOTIATION] != NONE_AT)
        out->level = SQL;
    else if (!((long long)lead->content_reads >= d->mql_min || (lead->contacts & INBOUND)))
        out->level = LEAD;
    else
        out->level = (lead->contacts & OUTBOUND) ? SAL : MQL;
    int64_t earliest = NONE_AT;
    for (int s = funnel_step; s >= 0; s--) { /* a step is reached at the earliest event of it or of a later step */
        if (step_first[s] != NONE_AT && (earliest == NONE_AT || step_first[s] < earliest)) earliest = step_first[s];
        out->reach[s] = earliest;
    }
    out->stage = stage;
    out->funnel_step = funnel_step;
    out->entered = entered;
}

/* ---- histograms of whole days (SPEC §10): a day count per day, in an array for the usual days ---- */

enum { HIST_DAYS = 4096 };

typedef struct {
    int64_t *counts;    /* days 0 .. HIST_DAYS - 1; NULL until one */
    PyObject *overflow; /* {day: count} for the others (a log spread over decades): a dict, NULL until one */
} Hist;

static int hist_add(Hist *h, int64_t day) {
    if (day >= 0 && day < HIST_DAYS) {
        if (h->counts == NULL && (h->counts = PyMem_Calloc(HIST_DAYS, sizeof(int64_t))) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        h->counts[day]++;
        return 0;
    }
    if (h->overflow == NULL && (h->overflow = PyDict_New()) == NULL) return -1;
    PyObject *key = PyLong_FromLongLong(day);
    if (key == NULL) return -1;
    int rc = count_in(h->overflow, key, 1);
    Py_DECREF(key);
    return rc;
}

/* {day: count} of the days with a count (a new reference). */
static PyObject *hist_dict(const Hist *h) {
    PyObject *dict = h->overflow ? PyDict_Copy(h->overflow) : PyDict_New();
    for (int64_t day = 0; dict != NULL && h->counts != NULL && day < HIST_DAYS; day++) {
        if (!h->counts[day]) continue;
        PyObject *key = PyLong_FromLongLong(day), *value = PyLong_FromLongLong(h->counts[day]);
        if (key == NULL || value == NULL || PyDict_SetItem(dict, key, value) < 0) Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    return dict;
}

static PyObject *hists_list(const Hist *hists, int n) {
    PyObject *list = PyList_New(n);
    for (int i = 0; list != NULL && i < n; i++) {
        PyObject *dict = hist_dict(&hists[i]);
        if (dict == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, dict);
    }
    return list;
}

static void hists_free(Hist *hists, int n) {
    for (int i = 0; i < n; i++) {
        PyMem_Free(hists[i].counts);
        Py_XDECREF(hists[i].overflow);
    }
}

/* projections.report.Velocity of one person: its stages entered and moved on from, its waiting days at
 * the watermark (when there is one), its funnel steps within the window and days to convert. */
typedef struct {
    int64_t entered[N_TYPES], moved_on[N_TYPES], window[N_TYPES];
    Hist move[N_TYPES], waiting[N_TYPES], convert[N_TYPES];
    int64_t window_micros, watermark;
    int has_watermark;
} VelocitySums;

static int velocity_count(VelocitySums *v, const Shape *shape, int n_stages) {
    int64_t later = NONE_AT;
    for (int st = n_stages - 1; st >= 0; st--) {
        int64_t at = shape->stages[st];
        if (at == NONE_AT) continue;
        v->entered[st]++;
        if (later != NONE_AT) {
            v->moved_on[st]++;
            if (hist_add(&v->move[st], floor_day(later > at ? later - at : 0)) < 0) return -1;
            if (later < at) at = later;
        }
        later = at;
    }
    if (v->has_watermark && shape->stage != NO_INDEX && hist_add(&v->waiting[shape->stage], floor_day(v->watermark - shape->entered)) < 0) return -1;
    if (shape->funnel_step == NO_INDEX) return 0;
    v->window[0]++;
    for (int s = 1; s <= shape->funnel_step; s++) {
        int64_t delta = shape->reach[s] - shape->reach[0];
        if (delta <= v->window_micros) v->window[s]++;
        if (hist_add(&v->convert[s], floor_day(delta)) < 0) return -1;
    }
    return 0;
}

/* (entered, moved_on, move_days, window, convert_days, waiting_days): projections.report.Velocity's fields. */
static PyObject *velocity_tuple(const VelocitySums *v, int n_stages, int n_steps) {
    return Py_BuildValue("NNNNNN", counts_list(v->entered, n_stages), counts_list(v->moved_on, n_stages), hists_list(v->move, n_stages),
                         counts_list(v->window, n_steps), hists_list(v->convert, n_steps), hists_list(v->waiting, n_stages));
}

/* aggregate(stage_of_type, step_of_type, stages, steps, mql_min_content_reads, sal_stale_after_micros, window_micros, watermark)
 *   -> (leads, pipeline, standing, pending, funnel, funnel_daily, cohorts_daily, groups, revenues, velocity): the fields of
 *   projections.report.Aggregates, `pending` as an unsorted list of (stale_from, person key); for attribution,
 *   `groups` counts persons by (first touch or None, funnel step, customer?) and `revenues` sums
 *   [hundredths, persons] by (first touch or None, currency); `velocity`, see velocity_tuple, its waiting days
 *   at `watermark` (None: none). Absorbed anonymous ids are in the persons they joined. */
static PyObject *table_aggregate(LeadTable *self, PyObject *args) {
    PyObject *stage_seq, *step_seq, *watermark;
    int n_stages, n_steps;
    long long mql_min, stale_after, window_micros;
    if (!PyArg_ParseTuple(args, "OOiiLLLO:aggregate", &stage_seq, &step_seq, &n_stages, &n_steps, &mql_min, &stale_after, &window_micros, &watermark))
        return NULL;
    Defs defs;
    if (read_defs(stage_seq, step_seq, n_stages, n_steps, mql_min, stale_after, &defs) < 0) return NULL;
    VelocitySums *v = PyMem_Calloc(1, sizeof(VelocitySums));
    if (v == NULL) return PyErr_NoMemory();
    v->window_micros = window_micros;
    if (watermark != Py_None) {
        v->watermark = PyLong_AsLongLong(watermark);
        if (v->watermark == -1 && PyErr_Occurred()) {
            PyMem_Free(v);
            return NULL;
        }
        v->has_watermark = 1;
    }
    int64_t pipeline[N_TYPES] = {0}, standing[N_LEVELS] = {0}, funnel[N_TYPES] = {0};
    Days funnel_daily = {NULL, 0, 0, n_steps}, cohorts_daily = {NULL, 0, 0, n_steps};
    size_t funnel_hint = 0, cohort_hint = 0;
    PyObject *pending = PyList_New(0), *groups = PyDict_New(), *revenues = PyDict_New(), *result = NULL;
    if (pending == NULL || groups == NULL || revenues == NULL) goto done;
    Py_ssize_t persons = 0;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Lead *lead = &self->leads[i];
        if (lead->absorbed) continue;
        persons++;
        Shape shape;
        lead_shape(lead, &defs, &shape);
        int stage = shape.stage, funnel_step = shape.funnel_step, level = shape.level;
        const int64_t *reach = shape.reach;
        if (stage != NO_INDEX) pipeline[stage]++;
        if (attribute(groups, revenues, lead, funnel_step, level == CUSTOMER) < 0) goto done;
        if (velocity_count(v, &shape, n_stages) < 0) goto done;
        if (level == MQL && stage != NO_INDEX) {
            PyObject *item = Py_BuildValue("(LO)", (long long)(shape.entered + stale_after), lead->key);
            if (item == NULL || PyList_Append(pending, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
        } else {
            standing[level]++;
        }
        if (funnel_step == NO_INDEX) continue;
        int64_t *cohort = days_row(&cohorts_daily, floor_day(reach[0]), &cohort_hint);
        if (cohort == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (int s = 0; s <= funnel_step; s++) {
            funnel[s]++;
            cohort[s]++;
            int64_t *row = days_row(&funnel_daily, floor_day(reach[s]), &funnel_hint);
            if (row == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            row[s]++;
        }
    }
    result = Py_BuildValue("nNNONNNOON", persons, counts_list(pipeline, n_stages), counts_list(standing, N_LEVELS), pending,
                           counts_list(funnel, n_steps), days_dict(&funnel_daily), days_dict(&cohorts_daily), groups, revenues,
                           velocity_tuple(v, n_stages, n_steps));
done:
    Py_XDECREF(pending);
    Py_XDECREF(groups);
    Py_XDECREF(revenues);
    days_free(&funnel_daily);
    days_free(&cohorts_daily);
    hists_free(v->move, N_TYPES);
    hists_free(v->waiting, N_TYPES);
    hists_free(v->convert, N_TYPES);
    PyMem_Free(v);
    return result;
}

/* Frees what a lead owns, apart from its key. */
static void lead_release(Lead *lead) {
    PyMem_Free(lead->heap_seen);
    Py_XDECREF(lead->touch_id);
    Py_XDECREF(lead->touch);
    Py_XDECREF(lead->touch_owner);
    for (uint32_t j = 0; j < lead->n_revenue; j++) Py_DECREF(lead->revenue[j].currency);
    PyMem_Free(lead->revenue);
}

/* The owner of `key` in the table, or NULL (no exception) when there is none. */
static Lead *table_find(LeadTable *t, PyObject *key) {
    if (!PyUnicode_Check(key) || t->index == NULL) return NULL;
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) {
        PyErr_Clear();
        return NULL;
    }
    for (size_t slot = (size_t)hash & t->mask; t->index[slot] != 0; slot = (slot + 1) & t->mask) {
        Lead *lead = &t->leads[t->index[slot] - 1];
        if (lead->hash == hash && (lead->key == key || PyUnicode_Compare(lead->key, key) == 0)) return lead;
    }
    PyErr_Clear();
    return NULL;
}

/* projections.lead.merge: anonymous id `owner`'s facts `from` into the person state `into`. */
static int lead_merge(LeadTable *t, Lead *into, const Lead *from, PyObject *owner) {
    for (int k = 0; k < N_TYPES; k++)
        if (from->first_at[k] != NONE_AT && (into->first_at[k] == NONE_AT || from->first_at[k] < into->first_at[k])) into->first_at[k] = from->first_at[k];
    if (from->last_at > into->last_at) into->last_at = from->last_at;
    into->events += from->events;
    into->content_reads += from->content_reads;
    into->contacts |= from->contacts;
    if (from->touch != NULL && from->touch_id != NULL) {
        int first = into->touch == NULL || into->touch_id == NULL || from->touch_at < into->touch_at;
        if (!first && from->touch_at == into->touch_at) {
            int order = PyUnicode_Compare(from->touch_id, into->touch_id);
            if (order == -1 && PyErr_Occurred()) return -1;
            if (order == 0 && into->touch_owner != NULL) { /* a tie: the lead's own touch, then the least anonymous id */
                order = PyUnicode_Compare(owner, into->touch_owner);
                if (order == -1 && PyErr_Occurred()) return -1;
            }
            first = order < 0;
        }
        if (first) {
            Py_XSETREF(into->touch, Py_NewRef(from->touch));
            Py_XSETREF(into->touch_id, Py_NewRef(from->touch_id));
            Py_XSETREF(into->touch_owner, Py_NewRef(owner));
            into->touch_at = from->touch_at;
        }
    }
    for (uint32_t i = 0; i < from->n_revenue; i++) {
        PyObject *name = table_intern(t, from->revenue[i].currency);
        if (name == NULL || lead_add_revenue(into, name, from->revenue[i].hundredths) < 0) return -1;
    }
    return 0;
}

/* absorb(lead key, anonymous key, anonymous id) -> bool: the anonymous id joined the lead (SPEC §9); its
 * facts are merged into the lead's, and it counts as a person no more. False when it owns no events here.
 * A lead's anonymous ids are absorbed in the order of their ids, so a first-touch tie goes to the least. */
static PyObject *table_absorb(LeadTable *self, PyObject *args) {
    PyObject *lead_key, *anon_key, *anonymous_id;
    if (!PyArg_ParseTuple(args, "UUU:absorb", &lead_key, &anon_key, &anonymous_id)) return NULL;
    Lead *anon = table_find(self, anon_key);
    if (anon == NULL || anon->absorbed) Py_RETURN_FALSE;
    Lead *lead = table_find(self, lead_key); /* after: finding the anonymous id moves nothing */
    if (lead == NULL) return PyErr_Format(PyExc_KeyError, "absorb: no lead %R in the table", lead_key);
    if (lead_merge(self, lead, anon, anonymous_id) < 0) return NULL;
    anon->absorbed = 1;
    Py_RETURN_TRUE;
}

static PyObject *table_hand_over(LeadTable *self, PyObject *key); /* below, with the stored layout */
static PyObject *table_adopt(LeadTable *self, PyObject *args);

/* anonymous_owners(prefix) -> how many owners' keys start with `prefix` (projections.identity.ANON_PREFIX). */
static PyObject *table_anonymous_owners(LeadTable *self, PyObject *prefix) {
    if (!PyUnicode_Check(prefix)) return PyErr_Format(PyExc_TypeError, "anonymous_owners takes a str");
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_ssize_t match = PyUnicode_Tailmatch(self->leads[i].key, prefix, 0, PY_SSIZE_T_MAX, -1);
        if (match < 0) return NULL;
        count += match;
    }
    return PyLong_FromSsize_t(count);
}

static int table_contains(LeadTable *self, PyObject *key) { return table_find(self, key) != NULL; }

/* missing(prefix, ids) -> how many of `ids` (anonymous ids) own nothing in the table: prefix + id is no key of it. */
static PyObject *table_missing(LeadTable *self, PyObject *args) {
    PyObject *prefix, *ids;
    if (!PyArg_ParseTuple(args, "UO:missing", &prefix, &ids)) return NULL;
    PyObject *iterator = PyObject_GetIter(ids);
    if (iterator == NULL) return NULL;
    Py_ssize_t count = 0;
    PyObject *id;
    while ((id = PyIter_Next(iterator)) != NULL) {
        PyObject *key = PyUnicode_Check(id) ? PyUnicode_Concat(prefix, id) : NULL;
        Py_DECREF(id);
        if (key == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "missing: an anonymous id is a str");
            break;
        }
        count += table_find(self, key) == NULL;
        Py_DECREF(key);
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? NULL : PyLong_FromSsize_t(count);
}

static Py_ssize_t table_length(LeadTable *self) { return self->n; }

static void table_dealloc(LeadTable *self) {
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_DECREF(self->leads[i].key);
        lead_release(&self->leads[i]);
    }
    Py_XDECREF(self->interned);
    PyMem_Free(self->leads);
    PyMem_Free(self->index);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef table_methods[] = {
    {"fold", (PyCFunction)table_fold, METH_VARARGS, "Fold records into the table; see projections.projector.CompactProjector"},
    {"states", (PyCFunction)table_states, METH_O, "Every lead's state, made by the given callable, by lead id"},
    {"aggregate", (PyCFunction)table_aggregate, METH_VARARGS, "The aggregates of every person for one set of definitions"},
    {"absorb", (PyCFunction)table_absorb, METH_VARARGS, "absorb(lead key, anonymous key, anonymous id): the anonymous id joined the lead"},
    {"hand_over", (PyCFunction)table_hand_over, METH_O, "hand_over(key) -> an owner's state as bytes (it leaves this table's persons), or None"},
    {"anonymous_owners", (PyCFunction)table_anonymous_owners, METH_O, "anonymous_owners(prefix) -> how many owners are anonymous ids"},
    {"missing", (PyCFunction)table_missing, METH_VARARGS, "missing(prefix, ids) -> how many of these anonymous ids own nothing here"},
    {"adopt", (PyCFunction)table_adopt, METH_VARARGS, "adopt(key, data): an owner another process exported"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods table_as_sequence = {.sq_length = (lenfunc)table_length, .sq_contains = (objobjproc)table_contains};

static PyTypeObject LeadTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "projections._fold.LeadTable",
    .tp_basicsize = sizeof(LeadTable),
    .tp_dealloc = (destructor)table_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lead states of one replay process, packed in C",
    .tp_methods = table_methods,
    .tp_as_sequence = &table_as_sequence,
    .tp_new = PyType_GenericNew,
};

/* ---- the live worker's batch fold: one partition's records over its stored leads ----
 *
 * projections.live.LiveProjection.process in C, for the leads a batch touches.
 * A stored lead is projections.stored.StoredLead: a head of the partition (uint16), the
 * offset the lead is applied through and its duplicates (int64 each), little-endian, then
 * its state as projections.codec writes it at version 3 (ending with the owner's identity
 * section, which this code carries through unread). Those Python classes are the
 * reference and stay the path wherever this is not built; tests hold both to the same bytes
 * and views. Stored bytes this code cannot read whole (an older version, or corrupt) go to
 * `upgrade`, which rewrites them at the current version or raises, saying why.
 */

enum { STORED_HEAD = 18, STATE_HEAD = 86, STATE_VERSION = 3 };
/* Offsets in a version-3 state: the version byte, 7 first_at, last_at, events, content reads (u64), contacts, seen count. */
enum { AT_FIRST = 1, AT_LAST = 57, AT_EVENTS = 65, AT_READS = 73, AT_CONTACTS = 81, AT_SEEN = 82 };

typedef struct {
    int64_t through, duplicates;
    long partition;
    PyObject *old_view; /* the lead's view before this batch; None for a lead new to the table */
    PyObject *old_shadow_view; /* the same under the shadow definitions (SPEC §11); NULL without a shadow */
    PyObject *cause_id; /* the event id of the last event the batch applied to the lead, or NULL */
    long cause_kind;
    int64_t cause_at;
    PyObject *identity; /* the owner's identity section (bytes, carried through); NULL: empty */
} Stored;

struct Live {
    PyObject *get, *upgrade, *view_type, *cause_type, *invalid;
    int64_t through; /* the partition's progress: records at or below it were judged before */
    long partition;
    Stored *stored; /* per lead of the batch's table, by position */
    Py_ssize_t allocated, n_stored;
    Defs defs;
    Defs shadow; /* SPEC §11's candidate definitions, when has_shadow: each view is taken under both */
    int has_shadow;
};

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint32_t get_u32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static unsigned char *put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8) p[i] = (unsigned char)v;
    return p + 8;
}
static unsigned char *put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++, v >>= 8) p[i] = (unsigned char)v;
    return p + 4;
}

/* Frees what a lead owns and makes it a lead without events (its key stays). */
static void lead_reset(Lead *lead) {
    lead_release(lead);
    PyObject *key = lead->key;
    Py_hash_t hash = lead->hash;
    memset(lead, 0, sizeof(Lead));
    lead->key = key;
    lead->hash = hash;
    for (int k = 0; k < N_TYPES; k++) lead->first_at[k] = NONE_AT;
}

/* A string of the codec at *at: 1 and a new reference in *out (None when absent), 0 when it is not one. */
static int read_text(const unsigned char *s, Py_ssize_t n, Py_ssize_t *at, PyObject **out) {
    if (n - *at < 4) return 0;
    uint32_t length = get_u32(s + *at);
    *at += 4;
    if (length == 0xFFFFFFFFU) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    if ((uint64_t)length > (uint64_t)(n - *at)) return 0;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s + *at, (Py_ssize_t)length, "surrogatepass");
    if (text == NULL) {
        PyErr_Clear(); /* `upgrade` reads it again and says why */
        return 0;
    }
    *at += length;
    *out = text;
    return 1;
}

/* A stored lead into `lead` (fresh) and `st`: 1, 0 when the bytes are not a whole current-version
 * stored lead (the lead is left fresh), -1 on error. */
static int lead_read(LeadTable *t, Lead *lead, Stored *st, const unsigned char *s, Py_ssize_t n) {
    if (n < STORED_HEAD + STATE_HEAD || s[STORED_HEAD] != STATE_VERSION) return 0;
    const unsigned char *p = s + STORED_HEAD;
    Py_ssize_t m = n - STORED_HEAD, at = STATE_HEAD;
    uint32_t n_seen = get_u32(p + AT_SEEN);
    if ((uint64_t)n_seen * 8 + 8 + 4 + 4 > (uint64_t)(m - at)) return 0;
    for (int k = 0; k < N_TYPES; k++) lead->first_at[k] = (int64_t)get_u64(p + AT_FIRST + 8 * k);
    lead->last_at = (int64_t)get_u64(p + AT_LAST);
    lead->events = get_u64(p + AT_EVENTS);
    lead->content_reads = get_u64(p + AT_READS);
    lead->contacts = p[AT_CONTACTS];
    if (n_seen > INLINE_SEEN) {
        lead->heap_seen = PyMem_Malloc((size_t)n_seen * sizeof(int64_t));
        if (lead->heap_seen == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        lead->capacity = n_seen;
    }
    int64_t *seen = lead_seen(lead);
    for (uint32_t i = 0; i < n_seen; i++, at += 8) seen[i] = (int64_t)get_u64(p + at);
    lead->n_seen = n_seen;
    int64_t touch_at = (int64_t)get_u64(p + at);
    at += 8;
    if (touch_at != NONE_AT) {
        PyObject *texts[4] = {NULL, NULL, NULL, NULL};
        int whole = 1;
        for (int i = 0; i < 4 && whole; i++) whole = read_text(p, m, &at, &texts[i]);
        if (!whole) {
            for (int i = 0; i < 4; i++) Py_XDECREF(texts[i]);
            goto partial;
        }
        lead->touch = PyTuple_Pack(3, texts[1], texts[2], texts[3]);
        for (int i = 1; i < 4; i++) Py_DECREF(texts[i]);
        if (texts[0] == Py_None) /* never written so, but read as the reference reads it: no touch id */
            Py_CLEAR(texts[0]);
        lead->touch_id = texts[0];
        if (lead->touch == NULL) return -1;
        lead->touch_at = touch_at;
    }
    if (m - at < 4) goto partial;
    uint32_t count = get_u32(p + at);
    at += 4;
    if ((uint64_t)count * 12 > (uint64_t)(m - at)) goto partial; /* each currency takes at least a length and an amount */
    if (count > 0) {
        lead->revenue = PyMem_Malloc((size_t)count * sizeof(Revenue));
        if (lead->revenue == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        lead->revenue_capacity = count;
    }
    for (uint32_t i = 0; i < count; i++) {
        PyObject *currency;
        if (!read_text(p, m, &at, &currency)) goto partial;
        if (currency == Py_None || m - at < 8) {
            Py_DECREF(currency);
            goto partial;
        }
        PyObject *name = table_intern(t, currency);
        Py_DECREF(currency);
        if (name == NULL) return -1;
        lead->revenue[i].currency = name;
        lead->revenue[i].hundredths = (int64_t)get_u64(p + at);
        lead->n_revenue++;
        at += 8;
    }
    if (m - at < 4) goto partial;
    uint32_t identity = get_u32(p + at);
    at += 4;
    if ((uint64_t)identity != (uint64_t)(m - at)) goto partial;
    if (identity > 0 && (st->identity = PyBytes_FromStringAndSize((const char *)p + at, identity)) == NULL) return -1;
    st->partition = get_u16(s);
    st->through = (int64_t)get_u64(s + 2);
    st->duplicates = (int64_t)get_u64(s + 10);
    return 1;
partial:
    lead_reset(lead);
    return 0;
}

typedef struct {
    const char *s;
    Py_ssize_t n; /* -1: absent (None) */
    PyObject *owner; /* the encoded bytes of a string with lone surrogates, or NULL */
} Text;

static int text_of(PyObject *value, Text *out) {
    out->owner = NULL;
    if (value == NULL || value == Py_None) {
        out->n = -1;
        return 0;
    }
    out->s = PyUnicode_AsUTF8AndSize(value, &out->n);
    if (out->s != NULL) return 0;
    PyErr_Clear(); /* lone surrogates, which JSON escapes can make: kept as the reference keeps them */
    out->owner = PyUnicode_AsEncodedString(value, "utf-8", "surrogatepass");
    if (out->owner == NULL) return -1;
    out->s = PyBytes_AS_STRING(out->owner);
    out->n = PyBytes_GET_SIZE(out->owner);
    return 0;
}

static unsigned char *put_text(unsigned char *p, const Text *text) {
    if (text->n < 0) return put_u32(p, 0xFFFFFFFFU);
    p = put_u32(p, (uint32_t)text->n);
    memcpy(p, text->s, (size_t)text->n);
    return p + text->n;
}

/* A stored lead's bytes, as StoredLead.encode writes them. */
static PyObject *lead_encode(Lead *lead, Stored *st) {
    if (st->partition < 0 || st->partition > 0xFFFF) {
        PyErr_Format(PyExc_OverflowError, "partition %ld does not fit a stored lead", st->partition);
        return NULL;
    }
    Py_ssize_t n_texts = 0, wanted = (lead->touch != NULL ? 4 : 0) + (Py_ssize_t)lead->n_revenue;
    Text *texts = PyMem_Malloc((size_t)(wanted ? wanted : 1) * sizeof(Text));
    if (texts == NULL) return PyErr_NoMemory();
    int touched = lead->touch != NULL;
    Py_ssize_t identity = st->identity == NULL ? 0 : PyBytes_GET_SIZE(st->identity);
    PyObject *result = NULL;
    Py_ssize_t size = STORED_HEAD + STATE_HEAD + 8 * (Py_ssize_t)lead->n_seen + 8 + 4 + 12 * (Py_ssize_t)lead->n_revenue + 4 + identity;
    if (touched) {
        PyObject *values[4] = {lead->touch_id, PyTuple_GET_ITEM(lead->touch, 0), PyTuple_GET_ITEM(lead->touch, 1), PyTuple_GET_ITEM(lead->touch, 2)};
        for (int i = 0; i < 4; i++, n_texts++) {
            if (text_of(values[i], &texts[i]) < 0) goto done;
            size += 4 + (texts[i].n < 0 ? 0 : texts[i].n);
        }
    }
    for (uint32_t i = 0; i < lead->n_revenue; i++, n_texts++) {
        if (text_of(lead->revenue[i].currency, &texts[n_texts]) < 0) goto done;
        size += texts[n_texts].n;
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) goto done;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(result);
    p[0] = (unsigned char)st->partition;
    p[1] = (unsigned char)(st->partition >> 8);
    p = put_u64(put_u64(p + 2, (uint64_t)st->through), (uint64_t)st->duplicates);
    *p++ = STATE_VERSION;
    for (int k = 0; k < N_TYPES; k++) p = put_u64(p, (uint64_t)lead->first_at[k]);
    p = put_u64(p, (uint64_t)lead->last_at);
    p = put_u64(put_u64(p, lead->events), lead->content_reads);
    *p++ = lead->contacts;
    p = put_u32(p, lead->n_seen);
    const int64_t *seen = lead_seen(lead);
    for (uint32_t i = 0; i < lead->n_seen; i++) p = put_u64(p, (uint64_t)seen[i]);
    p = put_u64(p, (uint64_t)(touched ? lead->touch_at : NONE_AT));
    int next = 0;
    if (touched)
        for (; next < 4; next++) p = put_text(p, &texts[next]);
    p = put_u32(p, lead->n_revenue);
    for (uint32_t i = 0; i < lead->n_revenue; i++) {
        p = put_text(p, &texts[next++]);
        p = put_u64(p, (uint64_t)lead->revenue[i].hundredths);
    }
    p = put_u32(p, (uint32_t)identity);
    if (identity) memcpy(p, PyBytes_AS_STRING(st->identity), (size_t)identity);
done:
    for (Py_ssize_t i = 0; i < n_texts; i++) Py_XDECREF(texts[i].owner);
    PyMem_Free(texts);
    return result;
}

/* hand_over(key) -> bytes or None: an anonymous id that joined a lead of another replay process leaves
 * this table's persons; its state, as projections.stored.StoredLead writes it (partition 0, through -1),
 * goes to that process, which `adopt`s it. None when the table has no such owner. */
static PyObject *table_hand_over(LeadTable *self, PyObject *key) {
    Lead *lead = table_find(self, key);
    if (lead == NULL || lead->absorbed) Py_RETURN_NONE;
    Stored st = {-1, 0, 0, NULL, NULL, 0, 0, NULL};
    PyObject *data = lead_encode(lead, &st);
    if (data != NULL) lead->absorbed = 1;
    return data;
}

/* adopt(key, data): an owner exported by another replay process, as an owner of this table (new to it). */
static PyObject *table_adopt(LeadTable *self, PyObject *args) {
    PyObject *key;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "Uy*:adopt", &key, &data)) return NULL;
    Py_ssize_t known = self->n;
    Lead *lead = table_lead(self, key);
    PyObject *result = NULL;
    if (lead != NULL && self->n == known) {
        PyErr_Format(PyExc_KeyError, "adopt: %R is in the table already", key);
    } else if (lead != NULL) {
        Stored st = {0};
        int rc = lead_read(self, lead, &st, (const unsigned char *)data.buf, data.len);
        Py_XDECREF(st.identity);
        if (rc == 0) PyErr_SetString(PyExc_ValueError, "adopt: not a stored owner of the current version");
        if (rc > 0) result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&data);
    return result;
}

/* An instance of a NamedTuple class, taking the `n` new references in `items` (NULL: an error, all released). */
static PyObject *named_tuple(PyObject *type, PyObject **items, Py_ssize_t n) {
    int complete = 1;
    for (Py_ssize_t i = 0; i < n; i++) complete = complete && items[i] != NULL;
    PyObject *tuple = complete ? ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, n) : NULL;
    if (tuple == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(tuple, i, items[i]);
    return tuple;
}

static PyObject *int_or_none(int present, int64_t value) { return present ? PyLong_FromLongLong(value) : Py_NewRef(Py_None); }

/* projections.lead.view: the LeadView of a lead. */
static PyObject *lead_view(Lead *lead, const Defs *d, PyObject *view_type) {
    Shape shape;
    lead_shape(lead, d, &shape);
    Py_ssize_t reached = shape.funnel_step + 1;
    PyObject *reach = PyTuple_New(reached);
    for (Py_ssize_t s = 0; reach != NULL && s < reached; s++) {
        PyObject *at = PyLong_FromLongLong(shape.reach[s]);
        if (at == NULL) Py_CLEAR(reach);
        else PyTuple_SET_ITEM(reach, s, at);
    }
    PyObject *revenue = PyList_New(lead->n_revenue);
    for (uint32_t i = 0; revenue != NULL && i < lead->n_revenue; i++) {
        PyObject *pair = Py_BuildValue("(OL)", lead->revenue[i].currency, (long long)lead->revenue[i].hundredths);
        if (pair == NULL) Py_CLEAR(revenue);
        else PyList_SET_ITEM(revenue, i, pair);
    }
    if (revenue != NULL && lead->n_revenue > 1 && PyList_Sort(revenue) < 0) Py_CLEAR(revenue);
    if (revenue != NULL) Py_SETREF(revenue, PyList_AsTuple(revenue));
    int staged = shape.stage != NO_INDEX;
    PyObject *entered = PyTuple_New(d->n_stages);
    for (int st = 0; entered != NULL && st < d->n_stages; st++) {
        PyObject *at = int_or_none(shape.stages[st] != NONE_AT, shape.stages[st]);
        if (at == NULL) Py_CLEAR(entered);
        else PyTuple_SET_ITEM(entered, st, at);
    }
    PyObject *items[12] = {
        Py_NewRef(lead->key),
        PyLong_FromLong(shape.stage),
        int_or_none(staged, shape.entered),
        PyLong_FromLong(shape.funnel_step),
        reach,
        PyLong_FromLong(shape.level),
        int_or_none(staged && shape.level == MQL, shape.entered + d->stale_after),
        PyLong_FromUnsignedLongLong(lead->events),
        PyLong_FromLongLong(lead->last_at),
        Py_NewRef(lead->touch ? lead->touch : Py_None),
        revenue,
        entered,
    };
    return named_tuple(view_type, items, 12);
}

static int live_load(Fold *f, Lead *lead, Stored *st) {
    Live *live = f->live;
    PyObject *data = PyObject_CallOneArg(live->get, lead->key);
    if (data == NULL) return -1;
    if (data == Py_None) {
        Py_DECREF(data);
        st->old_view = Py_NewRef(Py_None);
        st->old_shadow_view = Py_NewRef(Py_None);
        return 0;
    }
    int rc = -1;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "the stored value of lead %R is not bytes", lead->key);
        goto done;
    }
    rc = lead_read(f->table, lead, st, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    if (rc == 0) {
        Py_SETREF(data, PyObject_CallOneArg(live->upgrade, data));
        if (data == NULL) return -1;
        rc = PyBytes_Check(data) ? lead_read(f->table, lead, st, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)) : 0;
        if (rc == 0) {
            PyErr_Format(PyExc_ValueError, "the stored state of lead %R cannot be read at the current version", lead->key);
            rc = -1;
        }
    }
    if (rc > 0) {
        st->old_view = lead_view(lead, &live->defs, live->view_type);
        st->old_shadow_view = live->has_shadow ? lead_view(lead, &live->shadow, live->view_type) : Py_NewRef(Py_None);
        rc = st->old_view == NULL || st->old_shadow_view == NULL ? -1 : 0;
    }
done:
    Py_DECREF(data);
    return rc;
}

/* The record at f->offset reaches `lead`: 1 to apply it, 0 when the lead holds it already, -1 on error. */
static int live_touch(Fold *f, Lead *lead, int new_lead) {
    Live *live = f->live;
    Py_ssize_t i = lead - f->table->leads;
    if (new_lead) {
        if (i >= live->allocated) {
            Py_ssize_t allocated = live->allocated ? live->allocated * 2 : 256;
            Stored *grown = PyMem_Realloc(live->stored, (size_t)allocated * sizeof(Stored));
            if (grown == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            live->stored = grown;
            live->allocated = allocated;
        }
        Stored *st = &live->stored[i];
        memset(st, 0, sizeof(Stored));
        st->through = -1;
        st->partition = live->partition;
        live->n_stored = i + 1;
        if (live_load(f, lead, st) < 0) return -1;
    }
    Stored *st = &live->stored[i];
    if (f->offset <= st->through) return 0; /* delivered again: already in this lead's state */
    st->through = f->offset;
    return 1;
}

static void live_applied(Fold *f, Lead *lead, PyObject *event_id, long kind, int64_t at) {
    Stored *st = &f->live->stored[lead - f->table->leads];
    Py_XSETREF(st->cause_id, Py_NewRef(event_id));
    st->cause_kind = kind;
    st->cause_at = at;
}

static void live_duplicate(Fold *f, Lead *lead) { f->live->stored[lead - f->table->leads].duplicates++; }

static int live_rejected(Fold *f, PyObject *rejection, PyObject *raw) {
    if (f->offset <= f->live->through) return 0; /* counted when it was first judged */
    f->invalid++;
    PyObject *entry = Py_BuildValue("(LOO)", (long long)f->offset, rejection, raw);
    if (entry == NULL) return -1;
    int rc = PyList_Append(f->live->invalid, entry);
    Py_DECREF(entry);
    return rc;
}

/* Per owner of the batch, in first-touched order: (owner key, stored bytes, old view, new view, cause, identity,
 * old shadow view, new shadow view); new view and cause are None for an owner the batch applied nothing to;
 * identity is the owner's identity section (bytes), or None when it has none; the shadow views are the views
 * under the shadow definitions, None without a shadow. */
static PyObject *live_leads(Fold *f) {
    Live *live = f->live;
    PyObject *leads = PyList_New(f->table->n);
    for (Py_ssize_t i = 0; leads != NULL && i < f->table->n; i++) {
        Lead *lead = &f->table->leads[i];
        Stored *st = &live->stored[i];
        PyObject *new_view = Py_None, *cause = Py_None, *new_shadow = Py_None;
        Py_INCREF(Py_None);
        Py_INCREF(Py_None);
        Py_INCREF(Py_None);
        if (st->cause_id != NULL) {
            Py_SETREF(new_view, lead_view(lead, &live->defs, live->view_type));
            if (live->has_shadow) Py_SETREF(new_shadow, lead_view(lead, &live->shadow, live->view_type));
            PyObject *fields[3] = {Py_NewRef(st->cause_id), PyLong_FromLong(st->cause_kind), PyLong_FromLongLong(st->cause_at)};
            Py_SETREF(cause, named_tuple(live->cause_type, fields, 3));
        }
        PyObject *data = lead_encode(lead, st);
        PyObject *identity = st->identity ? st->identity : Py_None;
        PyObject *old_shadow = st->old_shadow_view ? st->old_shadow_view : Py_None;
        PyObject *entry = (data && new_view && cause && new_shadow) ? PyTuple_Pack(8, lead->key, data, st->old_view, new_view, cause, identity, old_shadow, new_shadow) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(new_view);
        Py_XDECREF(new_shadow);
        Py_XDECREF(cause);
        if (entry == NULL) Py_CLEAR(leads);
        else PyList_SET_ITEM(leads, i, entry);
    }
    return leads;
}

/* The attributes of fold_stored's `setup` (projections.projector.FoldSetup), read once per call. */
typedef struct {
    Decoding decoding;
    PyObject *upgrade, *view_type, *cause_type;
    Defs defs;
    Defs shadow;
    int has_shadow;
} Setup;

static void setup_release(Setup *s) {
    decoding_release(&s->decoding);
    Py_CLEAR(s->upgrade);
    Py_CLEAR(s->view_type);
    Py_CLEAR(s->cause_type);
}

static long long long_attribute(PyObject *setup, const char *name) {
    PyObject *value = PyObject_GetAttrString(setup, name);
    if (value == NULL) return -1;
    long long result = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return result;
}

static int setup_read(PyObject *setup, Setup *s) {
    memset(s, 0, sizeof(Setup));
    if (decoding_read(setup, &s->decoding) < 0) return -1;
    PyObject *stage_of_type = NULL, *step_of_type = NULL;
    if ((s->upgrade = PyObject_GetAttrString(setup, "upgrade")) == NULL || (s->view_type = PyObject_GetAttrString(setup, "view_type")) == NULL ||
        (s->cause_type = PyObject_GetAttrString(setup, "cause_type")) == NULL ||
        (stage_of_type = PyObject_GetAttrString(setup, "stage_of_type")) == NULL ||
        (step_of_type = PyObject_GetAttrString(setup, "step_of_type")) == NULL)
        goto fail;
    long long stages = long_attribute(setup, "stages"), steps = long_attribute(setup, "steps");
    long long mql_min = long_attribute(setup, "mql_min_content_reads"), stale_after = long_attribute(setup, "sal_stale_after_micros");
    if (PyErr_Occurred()) goto fail;
    if (!PyType_Check(s->view_type) || !PyType_IsSubtype((PyTypeObject *)s->view_type, &PyTuple_Type) || !PyType_Check(s->cause_type) ||
        !PyType_IsSubtype((PyTypeObject *)s->cause_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "fold_stored: view_type and cause_type are tuple classes");
        goto fail;
    }
    if (read_defs(stage_of_type, step_of_type, (int)stages, (int)steps, mql_min, stale_after, &s->defs) < 0) goto fail;
    Py_CLEAR(stage_of_type);
    Py_CLEAR(step_of_type);
    /* SPEC §11: shadow_stages -1 (no shadow), or the shadow definitions in the same shape as the current ones */
    long long shadow_stages = long_attribute(setup, "shadow_stages");
    if (PyErr_Occurred()) goto fail;
    if (shadow_stages >= 0) {
        long long shadow_steps = long_attribute(setup, "shadow_steps");
        long long shadow_mql = long_attribute(setup, "shadow_mql_min_content_reads"), shadow_stale = long_attribute(setup, "shadow_sal_stale_after_micros");
        if (PyErr_Occurred() || (stage_of_type = PyObject_GetAttrString(setup, "shadow_stage_of_type")) == NULL ||
            (step_of_type = PyObject_GetAttrString(setup, "shadow_step_of_type")) == NULL)
            goto fail;
        if (read_defs(stage_of_type, step_of_type, (int)shadow_stages, (int)shadow_steps, shadow_mql, shadow_stale, &s->shadow) < 0) goto fail;
        s->has_shadow = 1;
        Py_CLEAR(stage_of_type);
        Py_CLEAR(step_of_type);
    }
    return 0;
fail:
    Py_XDECREF(stage_of_type);
    Py_XDECREF(step_of_type);
    setup_release(s);
    return -1;
}

/* fold_stored(setup, records, get, partition, through) -> (valid, duplicates, invalid, watermark, leads, links):
 *   one partition's records, (offset, value) pairs in offset order, over the stored owners `get(key)` gives
 *   (bytes or None); `setup` (projections.projector.FoldSetup) holds the decoders, the classes to make and the
 *   definitions. `invalid` lists (offset, rejection, value) of the records past `through` that `slow`
 *   rejected; `leads`, see live_leads; `links`, (anonymous id, occurred_at, event id, lead id, type) per link applied. */
static PyObject *fold_stored(PyObject *module, PyObject *args) {
    PyObject *setup_object, *records, *get;
    long partition;
    long long through;
    if (!PyArg_ParseTuple(args, "OOOlL:fold_stored", &setup_object, &records, &get, &partition, &through)) return NULL;
    Setup setup;
    if (setup_read(setup_object, &setup) < 0) return NULL;
    Live live = {get, setup.upgrade, setup.view_type, setup.cause_type, NULL, through, partition, NULL, 0, 0, setup.defs, setup.shadow, setup.has_shadow};
    PyObject *items = PySequence_Fast(records, "fold_stored: records is a sequence of (offset, value) pairs");
    LeadTable *table = items == NULL ? NULL : (LeadTable *)PyType_GenericNew(&LeadTableType, NULL, NULL);
    PyObject *links = PyList_New(0);
    live.invalid = PyList_New(0);
    PyObject *result = NULL, *leads = NULL;
    if (table == NULL || live.invalid == NULL || links == NULL) goto done;
    Fold f = {table, setup.decoding.digest_of, setup.decoding.anon_prefix, links, 0, 0, 0, 0, 0, &live, 0};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2) {
            PyErr_SetString(PyExc_TypeError, "fold_stored: a record is an (offset, value) pair");
            goto done;
        }
        f.offset = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 0));
        if (f.offset == -1 && PyErr_Occurred()) goto done;
        if (fold_record(&f, PyTuple_GET_ITEM(item, 1), &setup.decoding) < 0) goto done;
    }
    leads = live_leads(&f);
    if (leads == NULL) goto done;
    PyObject *mark = f.has_mark ? PyLong_FromLongLong(f.mark) : Py_NewRef(Py_None);
    if (mark != NULL) {
        result = Py_BuildValue("nnONNO", f.valid, f.duplicates, live.invalid, mark, leads, links); /* takes mark and leads */
        leads = NULL;
    }
done:
    Py_XDECREF(leads);
    for (Py_ssize_t i = 0; i < live.n_stored; i++) {
        Py_XDECREF(live.stored[i].old_view);
        Py_XDECREF(live.stored[i].old_shadow_view);
        Py_XDECREF(live.stored[i].cause_id);
        Py_XDECREF(live.stored[i].identity);
    }
    PyMem_Free(live.stored);
    Py_XDECREF(live.invalid);
    Py_XDECREF(links);
    Py_XDECREF((PyObject *)table);
    Py_XDECREF(items);
    setup_release(&setup);
    return result;
}

/* ---- a live worker's velocity counts (projections.report.Velocity.move and .convert, the reference) ---- */

static const long long DAY = 86400000000LL; /* projections.definitions.DAY_MICROS */

static long long floor_days(long long micros) {
    long long day = micros / DAY;
    return (micros % DAY != 0 && micros < 0) ? day - 1 : day;
}

/* list[i] += sign */
static int list_bump(PyObject *list, Py_ssize_t i, long sign) {
    if (!PyList_Check(list) || i >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_IndexError, "velocity: a stage or step past the counts' end");
        return -1;
    }
    long long have = PyLong_AsLongLong(PyList_GET_ITEM(list, i));
    if (have == -1 && PyErr_Occurred()) return -1;
    PyObject *now = PyLong_FromLongLong(have + sign);
    if (now == NULL) return -1;
    PyList_SetItem(list, i, now); /* steals `now` */
    return 0;
}

/* histograms[i][day] += sign, the day dropped at 0 */
static int day_bump(PyObject *histograms, Py_ssize_t i, long long day, long sign) {
    if (!PyList_Check(histograms) || i >= PyList_GET_SIZE(histograms) || !PyDict_Check(PyList_GET_ITEM(histograms, i))) {
        PyErr_SetString(PyExc_TypeError, "velocity: histograms are a list of dicts, one per stage or step");
        return -1;
    }
    PyObject *histogram = PyList_GET_ITEM(histograms, i), *key = PyLong_FromLongLong(day);
    if (key == NULL) return -1;
    PyObject *have = PyDict_GetItemWithError(histogram, key);
    long long now = sign;
    if (have != NULL) {
        long long count = PyLong_AsLongLong(have);
        if (count == -1 && PyErr_Occurred()) goto fail;
        now += count;
    } else if (PyErr_Occurred()) {
        goto fail;
    }
    int rc;
    if (now != 0) {
        PyObject *value = PyLong_FromLongLong(now);
        if (value == NULL) goto fail;
        rc = PyDict_SetItem(histogram, key, value);
        Py_DECREF(value);
    } else {
        rc = PyDict_DelItem(histogram, key);
    }
    Py_DECREF(key);
    return rc;
fail:
    Py_DECREF(key);
    return -1;
}

/* velocity_move(entered, sign, counted, moved_on, move_days): Velocity.move in C */
static PyObject *velocity_move(PyObject *module, PyObject *args) {
    PyObject *entered, *counted, *moved_on, *histograms;
    long sign;
    if (!PyArg_ParseTuple(args, "O!lOOO:velocity_move", &PyTuple_Type, &entered, &sign, &counted, &moved_on, &histograms)) return NULL;
    int have_later = 0;
    long long later = 0;
    for (Py_ssize_t stage = PyTuple_GET_SIZE(entered) - 1; stage >= 0; stage--) {
        PyObject *item = PyTuple_GET_ITEM(entered, stage);
        if (item == Py_None) continue;
        long long at = PyLong_AsLongLong(item);
        if (at == -1 && PyErr_Occurred()) return NULL;
        if (list_bump(counted, stage, sign) < 0) return NULL;
        if (have_later) {
            if (list_bump(moved_on, stage, sign) < 0 || day_bump(histograms, stage, later > at ? floor_days(later - at) : 0, sign) < 0) return NULL;
            if (later < at) at = later;
        }
        later = at;
        have_later = 1;
    }
    Py_RETURN_NONE;
}

/* velocity_convert(reach_at, sign, window, window_micros, convert_days): Velocity.convert in C */
static PyObject *velocity_convert(PyObject *module, PyObject *args) {
    PyObject *reach, *window, *histograms;
    long sign;
    long long limit;
    if (!PyArg_ParseTuple(args, "O!lOLO:velocity_convert", &PyTuple_Type, &reach, &sign, &window, &limit, &histograms)) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(reach);
    if (n == 0) Py_RETURN_NONE;
    long long first = PyLong_AsLongLong(PyTuple_GET_ITEM(reach, 0));
    if (first == -1 && PyErr_Occurred()) return NULL;
    if (list_bump(window, 0, sign) < 0) return NULL;
    for (Py_ssize_t step = 1; step < n; step++) {
        long long at = PyLong_AsLongLong(PyTuple_GET_ITEM(reach, step));
        if (at == -1 && PyErr_Occurred()) return NULL;
        long long delta = at - first;
        if (delta <= limit && list_bump(window, step, sign) < 0) return NULL;
        if (day_bump(histograms, step, floor_days(delta), sign) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- routing lines to replay processes ---- */

/* Kafka's default partitioner: (murmur2(key) & 0x7fffffff) % partitions, murmur2 as the Java
 * client's Utils.murmur2. projections.routing is the Python reference; tests hold the two
 * together and to aiokafka's DefaultPartitioner. */
static uint32_t murmur2(const char *s, Py_ssize_t n) {
    const uint32_t m = 0x5bd1e995;
    const unsigned char *data = (const unsigned char *)s;
    uint32_t h = 0x9747b28cU ^ (uint32_t)n;
    Py_ssize_t whole = n - n % 4;
    for (Py_ssize_t i = 0; i < whole; i += 4) {
        uint32_t k = (uint32_t)data[i] | ((uint32_t)data[i + 1] << 8) | ((uint32_t)data[i + 2] << 16) | ((uint32_t)data[i + 3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (n % 4) {
    case 3: h ^= (uint32_t)data[whole + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)data[whole + 1] << 8; /* fall through */
    case 1: h ^= (uint32_t)data[whole]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

static Py_ssize_t kafka_partition(const char *key, Py_ssize_t n, Py_ssize_t partitions) {
    return (Py_ssize_t)((murmur2(key, n) & 0x7fffffffU) % (uint32_t)partitions);
}

static int blank(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\x0b' && c != '\x0c') return 0;
    }
    return 1;
}

static const char LEAD_KEY[] = "\"lead_id\"", ANONYMOUS_KEY[] = "\"anonymous_id\"";

/* The first `key` (a quoted JSON key) in s[0:n], or NULL; cheaper than memmem for a short needle in a short line. */
static const char *find_key(const char *s, Py_ssize_t n, const char *key, Py_ssize_t key_n) {
    const char *end = s + n;
    while (end - s >= key_n) {
        const char *quote = memchr(s, '"', end - s - key_n + 1);
        if (quote == NULL) return NULL;
        if (quote[1] == key[1] && memcmp(quote, key, key_n) == 0) return quote;
        s = quote + 1;
    }
    return NULL;
}

/* The string value of the one `key` in s[0:n]: 1 and its bytes, 0 when there is no such key, -1 when the
 * bytes leave doubt (the key twice, or not followed at once by a string). */
static int string_of(const char *s, Py_ssize_t n, const char *key, Py_ssize_t key_n, const char **value, Py_ssize_t *value_n) {
    const char *hit = find_key(s, n, key, key_n);
    if (hit == NULL) return 0;
    const char *after = hit + key_n;
    const char *end = s + n;
    if (find_key(after, end - after, key, key_n) != NULL) return -1;
    if (end - after < 2 || after[0] != ':' || after[1] != '"') return -1;
    const char *start = after + 2;
    const char *close = memchr(start, '"', end - start);
    if (close == NULL) return -1;
    *value = start;
    *value_n = close - start;
    return 1;
}

/* The owner of a line (SPEC §2: its lead id, else its anonymous id) straight from its bytes, when they
 * leave no doubt: no escapes, one "lead_id" token followed at once by a string, or no "lead_id" token at
 * all and one "anonymous_id" followed by a string. 1 and the owner's bytes, or 0 (ask JSON). */
static int owner_bytes(const char *s, Py_ssize_t n, const char **owner, Py_ssize_t *owner_n) {
    if (memchr(s, '\\', n) != NULL) return 0;
    int lead = string_of(s, n, LEAD_KEY, (Py_ssize_t)(sizeof(LEAD_KEY) - 1), owner, owner_n);
    if (lead != 0) return lead > 0;
    return string_of(s, n, ANONYMOUS_KEY, (Py_ssize_t)(sizeof(ANONYMOUS_KEY) - 1), owner, owner_n) > 0;
}

/* route(data, partitions, index, owner_of) -> the non-blank lines of `data` (CR LF or LF) whose
 * owner falls in partition `index`. `owner_of(line)` gives a line's owner as JSON reads it, or
 * None: a line with no owner is invalid, and partition 0 counts it. */
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
            if (owner_bytes(p, n, &lead, &lead_n)) {
                part = kafka_partition(lead, lead_n, partitions);
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
                    part = kafka_partition(PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8), partitions);
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

static PyObject *partition_of_key(PyObject *module, PyObject *args) {
    Py_buffer key;
    Py_ssize_t partitions;
    if (!PyArg_ParseTuple(args, "y*n:partition", &key, &partitions)) return NULL;
    if (partitions < 1) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "partition: partitions must be at least 1");
        return NULL;
    }
    Py_ssize_t part = kafka_partition(key.buf, key.len, partitions);
    PyBuffer_Release(&key);
    return PyLong_FromSsize_t(part);
}

/* ---- which anonymous ids join which leads (projections.identity.winners and kept, in C) ---- */

/* A link tuple (occurred_at, event_id, lead_id) is less than another: -1 on error. */
static int link_less(PyObject *a, PyObject *b) { return PyObject_RichCompareBool(a, b, Py_LT); }

/* choose(links, ignored, limit) -> (joined, over_limit): per lead, the anonymous ids that join it (its `limit`
 * least winning links, in no order) and how many more belong to it; `links` are LinkRecords (anonymous id,
 * occurred_at, event_id, lead id, type), `ignored` a set of ids that claim nothing. */
static PyObject *choose(PyObject *module, PyObject *args) {
    PyObject *links, *ignored;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "OOn:choose", &links, &ignored, &limit)) return NULL;
    PyObject *seq = PySequence_Fast(links, "choose: links is a sequence"), *won = PyDict_New(), *belonging = PyDict_New();
    PyObject *joined = PyDict_New(), *result = NULL;
    Py_ssize_t over = 0;
    if (seq == NULL || won == NULL || belonging == NULL || joined == NULL) goto done;
    for (Py_ssize_t i = 0, n = PySequence_Fast_GET_SIZE(seq); i < n; i++) {
        PyObject *record = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) < 4) {
            PyErr_SetString(PyExc_TypeError, "choose: a link is (anonymous id, occurred_at, event_id, lead id, type)");
            goto done;
        }
        PyObject *anonymous = PyTuple_GET_ITEM(record, 0), *lead = PyTuple_GET_ITEM(record, 3);
        int skip = PySet_Contains(ignored, anonymous);
        if (skip == 0) skip = PySet_Contains(ignored, lead);
        if (skip < 0) goto done;
        if (skip) continue;
        PyObject *link = PyTuple_Pack(3, PyTuple_GET_ITEM(record, 1), PyTuple_GET_ITEM(record, 2), lead);
        if (link == NULL) goto done;
        PyObject *best = PyDict_GetItemWithError(won, anonymous);
        int better = best == NULL ? !PyErr_Occurred() : link_less(link, best);
        if (better < 0 || (better && PyDict_SetItem(won, anonymous, link) < 0)) {
            Py_DECREF(link);
            goto done;
        }
        Py_DECREF(link);
    }
    PyObject *anonymous, *link;
    Py_ssize_t at = 0;
    while (PyDict_Next(won, &at, &anonymous, &link)) {
        PyObject *lead = PyTuple_GET_ITEM(link, 2), *entries = PyDict_GetItemWithError(belonging, lead);
        PyObject *entry = PyTuple_Pack(2, link, anonymous);
        if (entries == NULL && !PyErr_Occurred()) {
            entries = PyList_New(0);
            if (entries != NULL && PyDict_SetItem(belonging, lead, entries) < 0) Py_CLEAR(entries);
            Py_XDECREF(entries); /* the dict holds it */
        }
        int rc = (entry == NULL || entries == NULL) ? -1 : PyList_Append(entries, entry);
        Py_XDECREF(entry);
        if (rc < 0) goto done;
    }
    PyObject *lead, *entries;
    at = 0;
    while (PyDict_Next(belonging, &at, &lead, &entries)) {
        Py_ssize_t n = PyList_GET_SIZE(entries), keep = n <= limit ? n : limit;
        if (n > limit && PyList_Sort(entries) < 0) goto done;
        PyObject *ids = PyList_New(keep);
        for (Py_ssize_t i = 0; ids != NULL && i < keep; i++) PyList_SET_ITEM(ids, i, Py_NewRef(PyTuple_GET_ITEM(PyList_GET_ITEM(entries, i), 1)));
        int rc = ids == NULL ? -1 : PyDict_SetItem(joined, lead, ids);
        Py_XDECREF(ids);
        if (rc < 0) goto done;
        over += n - keep;
    }
    result = Py_BuildValue("On", joined, over);
done:
    Py_XDECREF(seq);
    Py_XDECREF(won);
    Py_XDECREF(belonging);
    Py_XDECREF(joined);
    return result;
}

/* The constants this file hard-codes, for tests to hold to schemas and projections (test_fold_accel.py, and
 * test_live_fold.py for the stored lead layout of projections.stored and projections.codec). */
static int add_constants(PyObject *module) {
    static const char *type_names[N_TYPES] = {"ad_seen", "content_read", "contact_made", "negotiation", "purchase", "upsell", "identified"};
    static const char *level_names[N_LEVELS] = {"lead", "mql", "sal", "sql", "customer"};
    PyObject *types = PyTuple_New(N_TYPES), *levels = PyTuple_New(N_LEVELS);
    if (types == NULL || levels == NULL) goto fail;
    for (int i = 0; i < N_TYPES; i++) {
        PyObject *name = PyUnicode_FromString(type_names[i]);
        if (name == NULL) goto fail;
        PyTuple_SET_ITEM(types, i, name);
    }
    for (int i = 0; i < N_LEVELS; i++) {
        PyObject *name = PyUnicode_FromString(level_names[i]);
        if (name == NULL) goto fail;
        PyTuple_SET_ITEM(levels, i, name);
    }
    if (PyModule_AddObject(module, "EVENT_TYPES", types) < 0) goto fail;
    types = NULL;
    if (PyModule_AddObject(module, "QUALIFICATIONS", levels) < 0) goto fail;
    levels = NULL;
    if (PyModule_AddIntConstant(module, "CONTENT_READ", CONTENT_READ) < 0 || PyModule_AddIntConstant(module, "CONTACT_MADE", CONTACT_MADE) < 0 ||
        PyModule_AddIntConstant(module, "NEGOTIATION", NEGOTIATION) < 0 || PyModule_AddIntConstant(module, "PURCHASE", PURCHASE) < 0 ||
        PyModule_AddIntConstant(module, "UPSELL", UPSELL) < 0 || PyModule_AddIntConstant(module, "IDENTIFIED", IDENTIFIED) < 0 ||
        PyModule_AddIntConstant(module, "INBOUND_CONTACT", INBOUND) < 0 ||
        PyModule_AddIntConstant(module, "OUTBOUND_CONTACT", OUTBOUND) < 0 || PyModule_AddIntConstant(module, "NO_INDEX", NO_INDEX) < 0 ||
        PyModule_AddObject(module, "DAY_MICROS", PyLong_FromLongLong(DAY_MICROS)) < 0 ||
        PyModule_AddIntConstant(module, "STORED_HEAD", STORED_HEAD) < 0 || PyModule_AddIntConstant(module, "STATE_HEAD", STATE_HEAD) < 0 ||
        PyModule_AddIntConstant(module, "STATE_VERSION", STATE_VERSION) < 0)
        return -1;
    return 0;
fail:
    Py_XDECREF(types);
    Py_XDECREF(levels);
    return -1;
}

static PyMethodDef methods[] = {
    {"parse_time", parse_time, METH_O, "parse_time(text) -> microseconds since the epoch; ValueError unless RFC 3339 with offset"},
    {"format_time", format_time, METH_O, "format_time(micros) -> RFC 3339 in UTC with microseconds, as schemas.events.format_time"},
    {"lead_change_records", lead_change_records, METH_O, "lead_change_records(changes) -> [(key, value, [])]: LeadChange.encode in C"},
    {"route", route, METH_VARARGS, "The lines of a chunk that belong to one replay partition"},
    {"use_struct", use_struct, METH_O, "use_struct(cls): read the fields of decoded events of this msgspec class from their slots"},
    {"fold_stored", fold_stored, METH_VARARGS, "One partition's records over its stored leads; see projections.live"},
    {"partition", partition_of_key, METH_VARARGS, "partition(key, partitions) -> the partition Kafka's default partitioner gives the key"},
    {"velocity_move", velocity_move, METH_VARARGS, "velocity_move(entered, sign, counted, moved_on, move_days): projections.report.Velocity.move"},
    {"velocity_convert", velocity_convert, METH_VARARGS, "velocity_convert(reach_at, sign, window, window_micros, convert_days): Velocity.convert"},
    {"choose", choose, METH_VARARGS, "choose(links, ignored, limit) -> (joined, over_limit): projections.identity.kept(winners(...)) in C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "projections._fold", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fold(void) {
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&s_event_id, "event_id"}, {&s_lead_id, "lead_id"}, {&s_occurred_at, "occurred_at"},
        {&s_inbound, "inbound"}, {&s_schema_version, "schema_version"}, {&s_index, "index"},
        {&s_source, "source"}, {&s_channel, "channel"}, {&s_campaign, "campaign"}, {&s_currency, "currency"},
        {&s_amount, "amount"}, {&s_no_currency, "(none)"}, {&s_anonymous_id, "anonymous_id"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL) return NULL;
    }
    if (PyType_Ready(&LeadTableType) < 0) return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (add_constants(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&LeadTableType);
    if (PyModule_AddObject(module, "LeadTable", (PyObject *)&LeadTableType) < 0) {
        Py_DECREF(&LeadTableType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
