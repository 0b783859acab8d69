//! `stalwart._native`: the pyo3 glue over the crate's plain Rust modules.
//!
//! Only conversion between Rust and Python lives here; the logic (and its tests) is in
//! `mime.rs`, `imap/`, `fts/` and `dkim.rs` (their glue: `imap_py.rs`, `fts_py.rs`,
//! `dkim_py.rs`). Long native
//! work (parsing, decoding a body) runs with the GIL released.
//! The Python-facing contract is the checked stub `stalwart/_native.pyi`.
//!
//! Objects are cheap to build: `Message` and `Part` are handles (a reference to the raw
//! `bytes` plus a shared pointer to the parsed tree); each getter converts one field
//! when it is read.

pub mod dkim;
pub mod fts;
pub mod imap;
pub mod mime;

mod dkim_py;
mod fts_py;
mod imap_py;

use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use mime::{AddressGroup, Decoded, ParsedMessage, RawHeader};

type Mailbox = (Option<String>, Option<String>);
type HeaderTuple = (String, usize, usize, usize);

/// A parsed message (top-level, or nested in a message/rfc822 part).
#[pyclass(frozen, module = "stalwart._native")]
struct Message {
    raw: Py<PyBytes>,
    msg: Arc<ParsedMessage>,
}

/// One MIME part of a `Message`.
#[pyclass(frozen, module = "stalwart._native")]
struct Part {
    raw: Py<PyBytes>,
    msg: Arc<ParsedMessage>,
    index: usize,
}

fn flat(groups: &[AddressGroup]) -> Vec<Mailbox> {
    groups
        .iter()
        .flat_map(|g| g.addresses.iter().map(|a| (a.name.clone(), a.address.clone())))
        .collect()
}

fn header_tuples(headers: &[RawHeader]) -> Vec<HeaderTuple> {
    headers.iter().map(|h| (h.name.clone(), h.field_start, h.value_start, h.end)).collect()
}

/// Raw value bytes of the last header field called `name` (case-insensitive).
fn last_header<'py>(
    py: Python<'py>,
    raw: &Py<PyBytes>,
    headers: &[RawHeader],
    name: &str,
) -> Option<Bound<'py, PyBytes>> {
    let h = headers.iter().rev().find(|h| h.name.eq_ignore_ascii_case(name))?;
    let bytes = raw.bind(py).as_bytes();
    Some(PyBytes::new(py, bytes.get(h.value_start..h.end).unwrap_or_default()))
}

fn decoded_object(
    py: Python<'_>,
    raw: &Py<PyBytes>,
    msg: &ParsedMessage,
    index: usize,
) -> PyResult<PyObject> {
    let part = msg
        .parts
        .get(index)
        .ok_or_else(|| PyIndexError::new_err(format!("no part {index}")))?;
    let bytes = raw.bind(py).as_bytes();
    let decoded = py.allow_threads(|| mime::decode(bytes, part));
    Ok(match decoded {
        Decoded::Text(text) => PyString::new(py, &text).into_any().unbind(),
        Decoded::Bytes(b) => PyBytes::new(py, &b).into_any().unbind(),
    })
}

#[pymethods]
impl Message {
    /// The whole raw message this one was parsed from (for a nested message: the outer one).
    #[getter]
    fn raw(&self, py: Python<'_>) -> Py<PyBytes> {
        self.raw.clone_ref(py)
    }
    #[getter]
    fn start(&self) -> usize {
        self.msg.start
    }
    #[getter]
    fn end(&self) -> usize {
        self.msg.end
    }
    #[getter]
    fn size(&self) -> usize {
        self.msg.end - self.msg.start
    }
    #[getter]
    fn parts(&self, py: Python<'_>) -> Vec<Part> {
        (0..self.msg.parts.len())
            .map(|index| Part { raw: self.raw.clone_ref(py), msg: self.msg.clone(), index })
            .collect()
    }
    fn part(&self, py: Python<'_>, index: usize) -> PyResult<Part> {
        if index < self.msg.parts.len() {
            Ok(Part { raw: self.raw.clone_ref(py), msg: self.msg.clone(), index })
        } else {
            Err(PyIndexError::new_err(format!("no part {index}")))
        }
    }
    #[getter]
    fn text_body(&self) -> Vec<usize> {
        self.msg.text_body.clone()
    }
    #[getter]
    fn html_body(&self) -> Vec<usize> {
        self.msg.html_body.clone()
    }
    #[getter]
    fn attachments(&self) -> Vec<usize> {
        self.msg.attachments.clone()
    }
    #[getter]
    fn subject(&self) -> Option<String> {
        self.msg.subject.clone()
    }
    #[getter]
    fn from_(&self) -> Vec<Mailbox> {
        flat(&self.msg.from)
    }
    #[getter]
    fn sender(&self) -> Vec<Mailbox> {
        flat(&self.msg.sender)
    }
    #[getter]
    fn reply_to(&self) -> Vec<Mailbox> {
        flat(&self.msg.reply_to)
    }
    #[getter]
    fn to(&self) -> Vec<Mailbox> {
        flat(&self.msg.to)
    }
    #[getter]
    fn cc(&self) -> Vec<Mailbox> {
        flat(&self.msg.cc)
    }
    #[getter]
    fn bcc(&self) -> Vec<Mailbox> {
        flat(&self.msg.bcc)
    }
    /// The addresses of one field ("from", "sender", "reply-to", "to", "cc", "bcc") as
    /// groups: `(group name or None, [(name, address), ...])`.
    fn address_groups(&self, field: &str) -> PyResult<Vec<(Option<String>, Vec<Mailbox>)>> {
        let m = &*self.msg;
        let groups = match field.to_ascii_lowercase().as_str() {
            "from" => &m.from,
            "sender" => &m.sender,
            "reply-to" | "reply_to" => &m.reply_to,
            "to" => &m.to,
            "cc" => &m.cc,
            "bcc" => &m.bcc,
            other => return Err(PyValueError::new_err(format!("not an address field: {other:?}"))),
        };
        Ok(groups
            .iter()
            .map(|g| {
                let list = g.addresses.iter().map(|a| (a.name.clone(), a.address.clone()));
                (g.name.clone(), list.collect())
            })
            .collect())
    }
    #[getter]
    fn date(&self) -> Option<i64> {
        self.msg.date
    }
    #[getter]
    fn date_raw(&self) -> Option<String> {
        self.msg.date_raw.clone()
    }
    #[getter]
    fn message_id(&self) -> Option<String> {
        self.msg.message_id.clone()
    }
    #[getter]
    fn in_reply_to(&self) -> Vec<String> {
        self.msg.in_reply_to.clone()
    }
    #[getter]
    fn references(&self) -> Vec<String> {
        self.msg.references.clone()
    }
    #[getter]
    fn preview(&self) -> String {
        self.msg.preview.clone()
    }
    /// Header fields of the message: (name, field start, value start, end).
    #[getter]
    fn headers(&self) -> Vec<HeaderTuple> {
        header_tuples(&self.msg.parts[0].headers)
    }
    /// Raw value of the last header field `name`, or None.
    fn header<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyBytes>> {
        last_header(py, &self.raw, &self.msg.parts[0].headers, name)
    }
    /// Content of part `index`: str for text parts, bytes otherwise.
    fn decoded_body(&self, py: Python<'_>, index: usize) -> PyResult<PyObject> {
        decoded_object(py, &self.raw, &self.msg, index)
    }
    fn __len__(&self) -> usize {
        self.msg.parts.len()
    }
    fn __repr__(&self) -> String {
        format!(
            "<Message {}..{} parts={} subject={:?}>",
            self.msg.start,
            self.msg.end,
            self.msg.parts.len(),
            self.msg.subject.as_deref().unwrap_or("")
        )
    }
}

impl Part {
    fn p(&self) -> &mime::Part {
        &self.msg.parts[self.index]
    }
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

#[pymethods]
impl Part {
    #[getter]
    fn index(&self) -> usize {
        self.index
    }
    #[getter]
    fn content_type(&self) -> String {
        self.p().content_type.clone()
    }
    #[getter]
    fn subtype(&self) -> String {
        self.p().subtype.clone()
    }
    #[getter]
    fn mime_type(&self) -> String {
        format!("{}/{}", self.p().content_type, self.p().subtype)
    }
    #[getter]
    fn params(&self) -> Vec<(String, String)> {
        self.p().params.clone()
    }
    fn param(&self, name: &str) -> Option<String> {
        param(&self.p().params, name)
    }
    #[getter]
    fn charset(&self) -> Option<String> {
        param(&self.p().params, "charset")
    }
    #[getter]
    fn encoding(&self) -> Option<String> {
        self.p().encoding.clone()
    }
    #[getter]
    fn content_id(&self) -> Option<String> {
        self.p().content_id.clone()
    }
    #[getter]
    fn description(&self) -> Option<String> {
        self.p().description.clone()
    }
    #[getter]
    fn location(&self) -> Option<String> {
        self.p().location.clone()
    }
    #[getter]
    fn disposition(&self) -> Option<String> {
        self.p().disposition.clone()
    }
    #[getter]
    fn disposition_params(&self) -> Vec<(String, String)> {
        self.p().disposition_params.clone()
    }
    /// Content-Disposition filename, else Content-Type name (RFC 8621 `name`).
    #[getter]
    fn filename(&self) -> Option<String> {
        let p = self.p();
        param(&p.disposition_params, "filename").or_else(|| param(&p.params, "name"))
    }
    #[getter]
    fn language(&self) -> Vec<String> {
        self.p().language.clone()
    }
    #[getter]
    fn header_start(&self) -> usize {
        self.p().header_start
    }
    #[getter]
    fn body_start(&self) -> usize {
        self.p().body_start
    }
    #[getter]
    fn body_end(&self) -> usize {
        self.p().body_end
    }
    #[getter]
    fn size(&self) -> usize {
        self.p().body_end - self.p().body_start
    }
    #[getter]
    fn lines(&self) -> usize {
        self.p().lines
    }
    #[getter]
    fn children(&self) -> Vec<usize> {
        self.p().children.clone()
    }
    #[getter]
    fn is_multipart(&self) -> bool {
        self.p().content_type == "multipart" && !self.p().children.is_empty()
    }
    #[getter]
    fn is_text(&self) -> bool {
        self.p().text.is_some()
    }
    #[getter]
    fn is_html(&self) -> bool {
        self.p().is_html
    }
    #[getter]
    fn encoding_problem(&self) -> bool {
        self.p().encoding_problem
    }
    #[getter]
    fn message(&self, py: Python<'_>) -> Option<Message> {
        let nested = self.p().message.as_ref()?;
        Some(Message { raw: self.raw.clone_ref(py), msg: nested.clone() })
    }
    #[getter]
    fn headers(&self) -> Vec<HeaderTuple> {
        header_tuples(&self.p().headers)
    }
    fn header<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyBytes>> {
        last_header(py, &self.raw, &self.p().headers, name)
    }
    /// Content: str for text parts, bytes otherwise.
    fn decoded(&self, py: Python<'_>) -> PyResult<PyObject> {
        decoded_object(py, &self.raw, &self.msg, self.index)
    }
    fn __repr__(&self) -> String {
        let p = self.p();
        format!(
            "<Part {} {}/{} {}..{}>",
            self.index, p.content_type, p.subtype, p.body_start, p.body_end
        )
    }
}

/// Parses an RFC 5322 message. Never raises for malformed input.
#[pyfunction]
fn parse_message(py: Python<'_>, raw: Bound<'_, PyBytes>) -> Message {
    let bytes = raw.as_bytes();
    let msg = py.allow_threads(|| mime::parse(bytes));
    Message { raw: raw.clone().unbind(), msg: Arc::new(msg) }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MIME_MAX_DEPTH", mime::MAX_DEPTH)?;
    m.add_class::<Message>()?;
    m.add_class::<Part>()?;
    m.add_function(wrap_pyfunction!(parse_message, m)?)?;
    imap_py::register(m)?;
    fts_py::register(m)?;
    dkim_py::register(m)?;
    Ok(())
}
