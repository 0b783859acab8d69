//! pyo3 glue of the IMAP command parser (`imap/`): the `ImapParser` class and
//! `imap_parse_command`, both turning the Rust values into the classes of
//! `stalwart/protocols/imap/types.py` (looked up once per interpreter), so the Python side
//! gets exactly the objects the reference grammar builds, with no conversion layer in
//! Python. Errors are raised as `types.ImapError`; `NEED_DATA` is the sentinel of
//! `stalwart.protocols.base`.
//!
//! The host callbacks the parser needs are Python's: `codecs.lookup` for SEARCH CHARSET
//! (text encodings only: a bytes-to-bytes codec such as rot13 is an unsupported charset,
//! never an exception escaping the parser), `bytes.decode`, `repr`, and the session's
//! optional `literal_limit(name)`. Parsing holds the GIL: a command is parsed in well under
//! a microsecond per argument and literals are only moved, so releasing it would cost more
//! than it gives.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDate, PyDateTime, PyDelta, PyDict, PyString, PyTuple, PyTzInfo};
use pyo3::IntoPyObjectExt;

use crate::imap::{
    self, AppendMessage, Args, Command, Date, DateTime, Event, FetchItem, Host, ImapError,
    LiteralLimit, Limits, Mode, Parser, Qresync, SearchKey, Section, SeqSet, Stop,
};

/// One frozen dataclass of `types.py` and its field names, in declaration order.
///
/// Instances are built the way the dataclass' own `__init__` builds them (allocated as
/// `object.__new__` does, then every field stored in a new instance dictionary, bypassing
/// the frozen `__setattr__`), which costs a fraction of calling the class (and measured
/// faster than setting the fields one by one). This is only valid for a
/// plain dataclass, so `load` checks that each class is one (no `__slots__`, no
/// `__post_init__`) and that its fields are exactly those this file fills; if `types.py`
/// changes, the first use fails loudly instead of building wrong objects.
struct Class {
    cls: PyObject,
    fields: Vec<Py<PyString>>,
}

impl Class {
    fn load(py: Python<'_>, module: &Bound<'_, PyModule>, name: &str, fields: &[&str]) -> PyResult<Self> {
        let cls = module.getattr(name)?;
        let declared: Vec<String> = py
            .import("dataclasses")?
            .call_method1("fields", (&cls,))?
            .try_iter()?
            .map(|f| f?.getattr("name")?.extract())
            .collect::<PyResult<_>>()?;
        let object_new = py.import("builtins")?.getattr("object")?.getattr("__new__")?;
        let plain = !cls.hasattr("__post_init__")?
            && !cls.getattr("__dict__")?.contains("__slots__")?
            && cls.getattr("__new__")?.is(&object_new)
            && cls.downcast::<pyo3::types::PyType>().is_ok();
        if declared != fields || !plain {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "stalwart.protocols.imap.types.{name} is not the plain dataclass with fields \
                 {fields:?} that ext/src/imap_py.rs builds (found {declared:?}); update the glue"
            )));
        }
        let fields = fields.iter().map(|f| PyString::intern(py, f).unbind()).collect();
        Ok(Class { cls: cls.unbind(), fields })
    }

    fn make<'py, const N: usize>(&self, py: Python<'py>, values: [Obj<'py>; N]) -> PyResult<Obj<'py>> {
        debug_assert_eq!(N, self.fields.len());
        // SAFETY: `cls` is a live type object (checked in `load` to be a class whose
        // `__new__` is `object.__new__`), so allocating through its `tp_alloc` is what
        // `object.__new__(cls)` does, minus the argument tuple.
        let obj = unsafe {
            let tp = self.cls.as_ptr() as *mut pyo3::ffi::PyTypeObject;
            let alloc = (*tp).tp_alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
            Bound::from_owned_ptr_or_err(py, alloc(tp, 0))?
        };
        let dict = PyDict::new(py);
        for (key, value) in self.fields.iter().zip(values) {
            dict.set_item(key.bind(py), value)?;
        }
        // SAFETY: both pointers are live objects owned by this frame; the call only stores
        // a new reference to `dict` as the instance dictionary (object.__setattr__'s way).
        let status = unsafe {
            pyo3::ffi::PyObject_GenericSetDict(obj.as_ptr(), dict.as_ptr(), std::ptr::null_mut())
        };
        if status < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(obj)
    }
}

/// The Python objects the values become.
struct Types {
    need_data: PyObject,
    local_error: PyObject,
    imap_error: PyObject,
    timezone: PyObject,
    codecs_lookup: PyObject,
    unicode_decode_error: PyObject,
    command: Class,
    continuation: Class,
    idle_done: Class,
    sasl_response: Class,
    literal_chunk: Class,
    sequence_set: Class,
    section: Class,
    fetch_item: Class,
    login: Class,
    authenticate: Class,
    mailbox: Class,
    rename: Class,
    create: Class,
    select: Class,
    qresync: Class,
    list_cmd: Class,
    lsub: Class,
    status: Class,
    append_message: Class,
    append: Class,
    search: Class,
    fetch: Class,
    store: Class,
    copy_move: Class,
    expunge: Class,
    enable: Class,
    id: Class,
    sort: Class,
    thread: Class,
    replace: Class,
    quota: Class,
    acl: Class,
    compress: Class,
    get_metadata: Class,
    set_metadata: Class,
    notify: Class,
    notify_group: Class,
}

static TYPES: GILOnceCell<Types> = GILOnceCell::new();

fn types(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get_or_try_init(py, || {
        let t = py.import("stalwart.protocols.imap.types")?;
        let base = py.import("stalwart.protocols.base")?;
        let c = |name: &str, fields: &[&str]| Class::load(py, &t, name, fields);
        Ok(Types {
            need_data: base.getattr("NEED_DATA")?.unbind(),
            local_error: base.getattr("LocalProtocolError")?.unbind(),
            imap_error: t.getattr("ImapError")?.unbind(),
            timezone: py.import("datetime")?.getattr("timezone")?.unbind(),
            codecs_lookup: py.import("codecs")?.getattr("lookup")?.unbind(),
            unicode_decode_error: py.get_type::<pyo3::exceptions::PyUnicodeDecodeError>().into_any().unbind(),
            command: c("Command", &["tag", "name", "args"])?,
            continuation: c("Continuation", &["tag", "name", "size"])?,
            idle_done: c("IdleDone", &[])?,
            sasl_response: c("SaslResponse", &["data"])?,
            literal_chunk: c("LiteralChunk", &["data", "last"])?,
            sequence_set: c("SequenceSet", &["ranges", "saved"])?,
            section: c("Section", &["part", "text", "fields"])?,
            fetch_item: c("FetchItem", &["name", "section", "partial", "peek", "lazy"])?,
            login: c("Login", &["username", "password"])?,
            authenticate: c("Authenticate", &["mechanism", "initial"])?,
            mailbox: c("Mailbox", &["name"])?,
            rename: c("Rename", &["old", "new"])?,
            create: c("Create", &["name", "use"])?,
            select: c("Select", &["name", "condstore", "qresync"])?,
            qresync: c("Qresync", &["uidvalidity", "modseq", "known_uids", "seq_match"])?,
            list_cmd: c("ListCmd", &["reference", "patterns", "select", "returns", "status", "extended"])?,
            lsub: c("Lsub", &["reference", "pattern"])?,
            status: c("Status", &["name", "items"])?,
            append_message: c("AppendMessage", &["flags", "date", "data", "binary"])?,
            append: c("Append", &["name", "messages"])?,
            search: c("Search", &["key", "returns", "charset"])?,
            fetch: c("Fetch", &["sequence", "items", "changed_since", "vanished", "macro"])?,
            store: c("Store", &["sequence", "mode", "silent", "flags", "unchanged_since"])?,
            copy_move: c("CopyMove", &["sequence", "name"])?,
            expunge: c("Expunge", &["uids"])?,
            enable: c("Enable", &["capabilities"])?,
            id: c("Id", &["params"])?,
            sort: c("Sort", &["criteria", "key", "charset"])?,
            thread: c("Thread", &["algorithm", "key", "charset"])?,
            replace: c("Replace", &["number", "name", "message"])?,
            quota: c("QuotaCmd", &["root", "limits"])?,
            acl: c("AclCmd", &["name", "identifier", "rights"])?,
            compress: c("Compress", &["mechanism"])?,
            get_metadata: c("GetMetadata", &["name", "entries", "maxsize", "depth"])?,
            set_metadata: c("SetMetadata", &["name", "entries"])?,
            notify: c("Notify", &["groups", "status"])?,
            notify_group: c("NotifyGroup", &["filter", "mailboxes", "events", "fetch"])?,
        })
    })
}

// -- host callbacks

struct PyHost<'a, 'py> {
    py: Python<'py>,
    t: &'a Types,
    literal_limit: Option<&'a PyObject>,
    error: Option<PyErr>,
}

impl Host for PyHost<'_, '_> {
    fn charset(&mut self, name: &str) -> Option<String> {
        let info = self.t.codecs_lookup.bind(self.py).call1((name,)).ok()?;
        // Bytes-to-bytes codecs (rot13, base64, zlib...) are not charsets.
        let is_text = info.getattr("_is_text_encoding").and_then(|v| v.is_truthy()).unwrap_or(true);
        if !is_text {
            return None;
        }
        info.getattr("name").ok()?.extract().ok()
    }

    fn decode(&mut self, codec: &str, raw: &[u8]) -> Option<String> {
        let bytes = PyBytes::new(self.py, raw);
        match bytes.call_method1("decode", (codec,)) {
            Ok(text) => text.extract().ok(),
            Err(err) => {
                if !err.is_instance(self.py, self.t.unicode_decode_error.bind(self.py)) {
                    self.error.get_or_insert(err);
                }
                None
            }
        }
    }

    fn str_repr(&mut self, text: &str) -> String {
        PyString::new(self.py, text)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| imap::chars::approx_str_repr(text))
    }
}

impl LiteralLimit for PyHost<'_, '_> {
    fn literal_limit(&mut self, name: &str) -> Result<Option<i64>, ()> {
        let Some(callback) = self.literal_limit else { return Ok(None) };
        match callback.bind(self.py).call1((name,)).and_then(|v| v.extract::<i64>()) {
            Ok(v) => Ok(Some(v)),
            Err(err) => {
                self.error = Some(err);
                Err(())
            }
        }
    }
}

// -- values to Python objects

type Obj<'py> = Bound<'py, PyAny>;

/// Any value as a Python object (`v!(py, x)`).
macro_rules! v {
    ($py:expr, $value:expr) => {
        $value.into_bound_py_any($py)?
    };
}

fn opt<'py, T>(py: Python<'py>, v: Option<T>, f: impl FnOnce(T) -> PyResult<Obj<'py>>) -> PyResult<Obj<'py>> {
    match v {
        Some(v) => f(v),
        None => Ok(py.None().into_bound(py)),
    }
}

fn strings<'py>(py: Python<'py>, items: Vec<String>) -> PyResult<Obj<'py>> {
    Ok(PyTuple::new(py, items)?.into_any())
}

fn seqset<'py>(py: Python<'py>, t: &Types, s: SeqSet) -> PyResult<Obj<'py>> {
    let ranges = PyTuple::new(py, s.ranges)?.into_any();
    t.sequence_set.make(py, [ranges, v!(py, s.saved)])
}

fn date<'py>(py: Python<'py>, d: Date) -> PyResult<Obj<'py>> {
    Ok(PyDate::new(py, d.year as i32, d.month, d.day)?.into_any())
}

fn date_time<'py>(py: Python<'py>, t: &Types, d: DateTime) -> PyResult<Obj<'py>> {
    let delta = PyDelta::new(py, 0, d.offset_minutes * 60, 0, true)?;
    let tz = t.timezone.bind(py).call1((delta,))?;
    let tz = tz.downcast::<PyTzInfo>()?;
    let dd = d.date;
    Ok(PyDateTime::new(py, dd.year as i32, dd.month, dd.day, d.hour, d.minute, d.second, 0, Some(tz))?
        .into_any())
}

fn section<'py>(py: Python<'py>, t: &Types, s: Section) -> PyResult<Obj<'py>> {
    let part = PyTuple::new(py, s.part)?.into_any();
    t.section.make(py, [part, v!(py, s.text), strings(py, s.fields)?])
}

fn fetch_item<'py>(py: Python<'py>, t: &Types, f: FetchItem) -> PyResult<Obj<'py>> {
    let sec = opt(py, f.section, |s| section(py, t, s))?;
    t.fetch_item.make(py, [v!(py, f.name), sec, v!(py, f.partial), v!(py, f.peek), v!(py, f.lazy)])
}

fn search_key<'py>(py: Python<'py>, t: &Types, k: SearchKey) -> PyResult<Obj<'py>> {
    let tuple = match k {
        SearchKey::All => PyTuple::new(py, ["all"])?,
        SearchKey::Recent => PyTuple::new(py, ["recent"])?,
        SearchKey::And(keys) => {
            let items = keys.into_iter().map(|k| search_key(py, t, k)).collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, [v!(py, "and"), PyTuple::new(py, items)?.into_any()])?
        }
        SearchKey::Or(a, b) => PyTuple::new(py, [v!(py, "or"), search_key(py, t, *a)?, search_key(py, t, *b)?])?,
        SearchKey::Not(k) => PyTuple::new(py, [v!(py, "not"), search_key(py, t, *k)?])?,
        SearchKey::Seq(s) => PyTuple::new(py, [v!(py, "seq"), seqset(py, t, s)?])?,
        SearchKey::Uid(s) => PyTuple::new(py, [v!(py, "uid"), seqset(py, t, s)?])?,
        SearchKey::Keyword(f) => PyTuple::new(py, ["keyword", f.as_str()])?,
        SearchKey::Date(name, d) => PyTuple::new(py, [v!(py, name), date(py, d)?])?,
        SearchKey::Number(name, n) => PyTuple::new(py, [v!(py, name), v!(py, n)])?,
        SearchKey::Header(field, value) => PyTuple::new(py, ["header", field.as_str(), value.as_str()])?,
        SearchKey::Text(name, value) => PyTuple::new(py, [name, value.as_str()])?,
    };
    Ok(tuple.into_any())
}

fn qresync<'py>(py: Python<'py>, t: &Types, q: Qresync) -> PyResult<Obj<'py>> {
    let known = opt(py, q.known_uids, |s| seqset(py, t, s))?;
    let matched = opt(py, q.seq_match, |(a, b)| {
        Ok(PyTuple::new(py, [seqset(py, t, a)?, seqset(py, t, b)?])?.into_any())
    })?;
    t.qresync.make(py, [v!(py, q.uidvalidity), v!(py, q.modseq), known, matched])
}

fn append_message<'py>(py: Python<'py>, t: &Types, m: AppendMessage) -> PyResult<Obj<'py>> {
    let when = opt(py, m.date, |d| date_time(py, t, d))?;
    let data = PyBytes::new(py, &m.data).into_any();
    t.append_message.make(py, [strings(py, m.flags)?, when, data, v!(py, m.binary)])
}

fn args<'py>(py: Python<'py>, t: &Types, a: Args) -> PyResult<Obj<'py>> {
    match a {
        Args::None => Ok(py.None().into_bound(py)),
        Args::Login { username, password } => t.login.make(py, [v!(py, username), v!(py, password)]),
        Args::Authenticate { mechanism, initial } => {
            let initial = opt(py, initial, |v| Ok(PyBytes::new(py, &v).into_any()))?;
            t.authenticate.make(py, [v!(py, mechanism), initial])
        }
        Args::Enable(caps) => t.enable.make(py, [strings(py, caps)?]),
        Args::Id(params) => {
            let params = opt(py, params, |p| Ok(PyTuple::new(py, p)?.into_any()))?;
            t.id.make(py, [params])
        }
        Args::Mailbox(name) => t.mailbox.make(py, [v!(py, name)]),
        Args::Rename { old, new } => t.rename.make(py, [v!(py, old), v!(py, new)]),
        Args::Create { name, special_use } => t.create.make(py, [v!(py, name), strings(py, special_use)?]),
        Args::Select { name, condstore, qresync: q } => {
            let q = opt(py, q, |q| qresync(py, t, q))?;
            t.select.make(py, [v!(py, name), v!(py, condstore), q])
        }
        Args::List { reference, patterns, select, returns, status, extended } => t.list_cmd.make(py, [
            v!(py, reference),
            strings(py, patterns)?,
            strings(py, select)?,
            strings(py, returns)?,
            strings(py, status)?,
            v!(py, extended),
        ]),
        Args::Lsub { reference, pattern } => t.lsub.make(py, [v!(py, reference), v!(py, pattern)]),
        Args::Status { name, items } => t.status.make(py, [v!(py, name), strings(py, items)?]),
        Args::Append { name, messages } => {
            let messages =
                messages.into_iter().map(|m| append_message(py, t, m)).collect::<PyResult<Vec<_>>>()?;
            t.append.make(py, [v!(py, name), PyTuple::new(py, messages)?.into_any()])
        }
        Args::Search { key, returns, charset } => {
            let returns = opt(py, returns, |r| strings(py, r))?;
            t.search.make(py, [search_key(py, t, key)?, returns, v!(py, charset)])
        }
        Args::Fetch { sequence, items, changed_since, vanished, macro_ } => {
            let items = items.into_iter().map(|i| fetch_item(py, t, i)).collect::<PyResult<Vec<_>>>()?;
            t.fetch.make(py, [
                seqset(py, t, sequence)?,
                PyTuple::new(py, items)?.into_any(),
                v!(py, changed_since),
                v!(py, vanished),
                v!(py, macro_),
            ])
        }
        Args::Store { sequence, mode, silent, flags, unchanged_since } => t.store.make(py, [
            seqset(py, t, sequence)?,
            v!(py, mode),
            v!(py, silent),
            strings(py, flags)?,
            v!(py, unchanged_since),
        ]),
        Args::CopyMove { sequence, name } => t.copy_move.make(py, [seqset(py, t, sequence)?, v!(py, name)]),
        Args::Expunge(uids) => t.expunge.make(py, [seqset(py, t, uids)?]),
        Args::Sort { criteria, key, charset } => t.sort.make(py, [
            PyTuple::new(py, criteria)?.into_any(),
            search_key(py, t, key)?,
            v!(py, charset),
        ]),
        Args::Thread { algorithm, key, charset } => {
            t.thread.make(py, [v!(py, algorithm), search_key(py, t, key)?, v!(py, charset)])
        }
        Args::Replace { number, name, message } => {
            t.replace.make(py, [v!(py, number), v!(py, name), append_message(py, t, message)?])
        }
        Args::Quota { root, limits } => {
            t.quota.make(py, [v!(py, root), PyTuple::new(py, limits)?.into_any()])
        }
        Args::Acl { name, identifier, rights } => {
            t.acl.make(py, [v!(py, name), v!(py, identifier), v!(py, rights)])
        }
        Args::Compress(mechanism) => t.compress.make(py, [v!(py, mechanism)]),
        Args::GetMetadata { name, entries, maxsize, depth } => t.get_metadata.make(py, [
            v!(py, name),
            strings(py, entries)?,
            v!(py, maxsize),
            v!(py, depth),
        ]),
        Args::SetMetadata { name, entries } => {
            let pairs = entries
                .into_iter()
                .map(|(entry, value)| {
                    let value = opt(py, value, |v| Ok(PyBytes::new(py, &v).into_any()))?;
                    Ok(PyTuple::new(py, [v!(py, entry), value])?.into_any())
                })
                .collect::<PyResult<Vec<_>>>()?;
            t.set_metadata.make(py, [v!(py, name), PyTuple::new(py, pairs)?.into_any()])
        }
        Args::Notify { groups, status } => {
            let groups = opt(py, groups, |groups| {
                let items = groups
                    .into_iter()
                    .map(|g| {
                        let fetch =
                            g.fetch.into_iter().map(|i| fetch_item(py, t, i)).collect::<PyResult<Vec<_>>>()?;
                        t.notify_group.make(py, [
                            v!(py, g.filter),
                            strings(py, g.mailboxes)?,
                            strings(py, g.events)?,
                            PyTuple::new(py, fetch)?.into_any(),
                        ])
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyTuple::new(py, items)?.into_any())
            })?;
            t.notify.make(py, [groups, v!(py, status)])
        }
    }
}

fn command<'py>(py: Python<'py>, t: &Types, c: Command) -> PyResult<Obj<'py>> {
    let a = args(py, t, c.args)?;
    t.command.make(py, [v!(py, c.tag), v!(py, c.name), a])
}

fn imap_error(py: Python<'_>, t: &Types, e: ImapError) -> PyErr {
    let kwargs = [
        ("tag", e.tag.into_pyobject(py).map(Bound::into_any)),
        ("code", e.code.into_pyobject(py).map(Bound::into_any)),
        ("close", e.close.into_pyobject(py).map(|b| b.to_owned().into_any())),
    ];
    let build = || -> PyResult<PyErr> {
        let dict = PyDict::new(py);
        for (k, v) in kwargs {
            dict.set_item(k, v?)?;
        }
        let err = t.imap_error.bind(py).call((e.message, e.reply), Some(&dict))?;
        Ok(PyErr::from_value(err))
    };
    build().unwrap_or_else(|err| err)
}

fn stop(py: Python<'_>, t: &Types, s: Stop, host_error: Option<PyErr>) -> PyErr {
    match s {
        Stop::Imap(e) => imap_error(py, t, e),
        Stop::Host => host_error
            .unwrap_or_else(|| PyTypeError::new_err("IMAP parser host callback failed")),
        Stop::Local(message) => match t.local_error.bind(py).call1((message,)) {
            Ok(err) => PyErr::from_value(err),
            Err(err) => err,
        },
    }
}

fn limits_from(values: (usize, i64, i64, i64, i64, i64, i64, i64)) -> PyResult<Limits> {
    if values.0 < 2 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "max_line must leave room for at least one octet and LF",
        ));
    }
    Ok(Limits {
        max_line: values.0,
        max_command: values.1,
        max_literal: values.2,
        max_append: values.3,
        max_append_total: values.4,
        max_discard: values.5,
        max_depth: values.6,
        max_args: values.7,
    })
}

type LimitsTuple = (usize, i64, i64, i64, i64, i64, i64, i64);

/// Incremental IMAP command reader (see `stalwart/_native.pyi`).
#[pyclass(module = "stalwart._native")]
pub struct ImapParser {
    inner: Parser,
    literal_limit: Option<PyObject>,
}

#[pymethods]
impl ImapParser {
    #[new]
    #[pyo3(signature = (limits, utf8 = false, literal_limit = None))]
    fn new(limits: LimitsTuple, utf8: bool, literal_limit: Option<PyObject>) -> PyResult<Self> {
        Ok(ImapParser { inner: Parser::new(limits_from(limits)?, utf8), literal_limit })
    }

    fn receive_data(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(bytes) = data.downcast::<PyBytes>() {
            self.inner.receive_data(bytes.as_bytes());
        } else {
            let buffer = pyo3::buffer::PyBuffer::<u8>::get(data)?;
            self.inner.receive_data(&buffer.to_vec(data.py())?);
        }
        Ok(())
    }

    fn next_event(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        let t = types(py)?;
        let mut host = PyHost { py, t, literal_limit: self.literal_limit.as_ref(), error: None };
        let mut limit_host = PyHost { py, t, literal_limit: self.literal_limit.as_ref(), error: None };
        let result = self.inner.next_event(&mut host, &mut limit_host);
        if let Some(err) = host.error.take() {
            return Err(err);
        }
        let event = result.map_err(|s| stop(py, t, s, limit_host.error.take()))?;
        Ok(match event {
            Event::NeedData => t.need_data.clone_ref(py),
            Event::Command(c) => command(py, t, c)?.unbind(),
            Event::Continuation(tag, name, size) => {
                t.continuation.make(py, [v!(py, tag), v!(py, name), v!(py, size)])?.unbind()
            }
            Event::IdleDone => t.idle_done.make(py, [])?.unbind(),
            Event::SaslResponse(line) => t.sasl_response.make(py, [PyBytes::new(py, &line).into_any()])?.unbind(),
            Event::LiteralData(data, last) => {
                t.literal_chunk.make(py, [PyBytes::new(py, &data).into_any(), v!(py, last)])?.unbind()
            }
        })
    }

    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    /// Octets of memory the reader's buffers hold (capacity), for tests and diagnostics.
    fn memory(&self) -> usize {
        self.inner.memory()
    }

    fn discard_buffer<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        match self.inner.discard_buffer() {
            Ok(data) => Ok(PyBytes::new(py, &data)),
            Err(s) => Err(stop(py, types(py)?, s, None)),
        }
    }

    fn expect_idle_done(&mut self) {
        self.inner.mode = Mode::Idle;
    }

    fn expect_sasl(&mut self) {
        self.inner.mode = Mode::Sasl;
    }

    fn expect_command(&mut self) {
        self.inner.mode = Mode::Command;
    }

    fn refuse_literal(&mut self) {
        self.inner.refuse_literal();
    }

    #[getter]
    fn get_stream_append(&self) -> bool {
        self.inner.stream_append
    }

    #[setter]
    fn set_stream_append(&mut self, value: bool) {
        self.inner.stream_append = value;
    }

    #[getter]
    fn get_utf8(&self) -> bool {
        self.inner.utf8
    }

    #[setter]
    fn set_utf8(&mut self, value: bool) {
        self.inner.utf8 = value;
    }

    #[getter]
    fn get_mode(&self) -> &'static str {
        self.inner.mode.name()
    }

    #[setter]
    fn set_mode(&mut self, value: &str) -> PyResult<()> {
        self.inner.mode = match value {
            "command" => Mode::Command,
            "idle" => Mode::Idle,
            "sasl" => Mode::Sasl,
            other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown mode {other:?}"))),
        };
        Ok(())
    }
}

/// Parses one complete command (its line parts and the literals between them).
#[pyfunction]
#[pyo3(signature = (parts, literals, limits, utf8 = false))]
fn imap_parse_command(
    py: Python<'_>,
    parts: Vec<Vec<u8>>,
    literals: Vec<(Vec<u8>, bool)>,
    limits: LimitsTuple,
    utf8: bool,
) -> PyResult<PyObject> {
    let t = types(py)?;
    let limits = limits_from(limits)?;
    if parts.is_empty() {
        return Err(pyo3::exceptions::PyIndexError::new_err("a command has at least one line"));
    }
    let mut host = PyHost { py, t, literal_limit: None, error: None };
    let views: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let result = imap::parse_command(&views, literals, &limits, utf8, &mut host, None);
    if let Some(err) = host.error.take() {
        return Err(err);
    }
    match result {
        Ok(c) => Ok(command(py, t, c)?.unbind()),
        Err(e) => Err(imap_error(py, t, e)),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ImapParser>()?;
    m.add_function(wrap_pyfunction!(imap_parse_command, m)?)?;
    Ok(())
}
