//! pyo3 glue of `dkim.rs` (DKIM/ARC canonicalization and body hashing). The Python
//! reference and the dispatch to these functions are in `stalwart/mailauth/canon.py`.
//! Bodies over `RELEASE_GIL` bytes are hashed with the GIL released.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use pyo3::{ffi, PyTypeInfo};

use crate::dkim::{self, BodyHasher};

const RELEASE_GIL: usize = 64 * 1024;

type Digest<'py> = (Bound<'py, PyBytes>, u64);

/// Whether instances of `ty` are plain tuples under another type: a tuple subclass with
/// no instance dict, weak references or extra slots (a `typing.NamedTuple`).
fn is_plain_tuple_subclass(ty: &Bound<'_, PyType>) -> bool {
    let tuple = PyTuple::type_object(ty.py());
    if !ty.is_subclass(&tuple).unwrap_or(false) {
        return false;
    }
    // SAFETY: both are live type objects; only their layout fields are read.
    unsafe {
        let t = ty.as_type_ptr();
        let base = tuple.as_type_ptr();
        (*t).tp_basicsize == (*base).tp_basicsize
            && (*t).tp_itemsize == (*base).tp_itemsize
            && (*t).tp_dictoffset == 0
            && (*t).tp_weaklistoffset == 0
    }
}

/// A 2-tuple of type `ty` (checked by `is_plain_tuple_subclass`), built as CPython builds
/// tuple subclass instances: allocate through the type, then fill the items.
fn pair<'py>(ty: &Bound<'py, PyType>, a: Bound<'py, PyAny>, b: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = ty.py();
    // SAFETY: `ty` has the tuple layout; tp_alloc returns a new reference to a tuple of 2
    // NULL items (or NULL with an exception set); each SET_ITEM steals one reference.
    unsafe {
        let t = ty.as_type_ptr();
        let alloc = (*t).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        let obj = alloc(t, 2);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        ffi::PyTuple_SET_ITEM(obj, 0, a.into_ptr());
        ffi::PyTuple_SET_ITEM(obj, 1, b.into_ptr());
        Ok(Bound::from_owned_ptr(py, obj))
    }
}

/// (fields as `field_type(lower-case name, raw field)`, body) of a raw message;
/// `field_type` is `tuple` or a NamedTuple of two fields (TypeError otherwise).
#[pyfunction]
#[pyo3(signature = (message, field_type = None))]
fn dkim_split<'py>(
    py: Python<'py>,
    message: &[u8],
    field_type: Option<Bound<'py, PyType>>,
) -> PyResult<(Vec<Bound<'py, PyAny>>, Bound<'py, PyBytes>)> {
    let ty = field_type.unwrap_or_else(|| PyTuple::type_object(py));
    if !is_plain_tuple_subclass(&ty) {
        return Err(PyTypeError::new_err("field_type must be tuple or a NamedTuple"));
    }
    let s = dkim::split(message);
    let mut fields = Vec::with_capacity(s.fields.len());
    for f in &s.fields {
        let name = PyBytes::new(py, &s.lname(f)).into_any();
        let raw = PyBytes::new(py, &s.raw(f)).into_any();
        fields.push(pair(&ty, name, raw)?);
    }
    Ok((fields, PyBytes::new(py, s.body())))
}

#[pyfunction]
fn dkim_relaxed_header<'py>(py: Python<'py>, raw: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &dkim::relaxed_header(raw))
}

/// The field with its b= value emptied; the same object when there is nothing to empty.
#[pyfunction]
fn dkim_strip_b_value<'py>(py: Python<'py>, raw: Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyBytes>> {
    match dkim::strip_b_value(raw.as_bytes()) {
        None => Err(PyValueError::new_err("header field has no colon")),
        Some(std::borrow::Cow::Borrowed(_)) => Ok(raw),
        Some(std::borrow::Cow::Owned(v)) => Ok(PyBytes::new(py, &v)),
    }
}

/// The signed header data: `fields` (an iterable of bytes) canonicalized, then the
/// signature field with an empty b= and no final CRLF.
#[pyfunction]
fn dkim_header_data<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyAny>,
    relaxed: bool,
    signature: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let items: Vec<Bound<'py, PyBytes>> = fields
        .try_iter()?
        .map(|item| {
            item?.downcast_into::<PyBytes>().map_err(|_| PyTypeError::new_err("header fields must be bytes"))
        })
        .collect::<PyResult<_>>()?;
    let data = dkim::header_data(items.iter().map(|b| b.as_bytes()), relaxed, signature)
        .ok_or_else(|| PyValueError::new_err("signature field has no colon"))?;
    Ok(PyBytes::new(py, &data))
}

/// (SHA-256 of the first `limit` canonical body bytes, canonical body length).
#[pyfunction]
#[pyo3(signature = (body, relaxed, limit = None))]
fn dkim_body_hash<'py>(py: Python<'py>, body: &[u8], relaxed: bool, limit: Option<u64>) -> Digest<'py> {
    let (digest, length) = if body.len() > RELEASE_GIL {
        py.allow_threads(|| dkim::body_hash(body, relaxed, limit))
    } else {
        dkim::body_hash(body, relaxed, limit)
    };
    (PyBytes::new(py, &digest), length)
}

/// The canonical body itself (tests and diagnostics only).
#[pyfunction]
fn dkim_canonical_body<'py>(py: Python<'py>, body: &[u8], relaxed: bool) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &dkim::canonical_body(body, relaxed))
}

/// Streaming body hash: `update(chunk)` any number of times, then `finish()` once.
#[pyclass(module = "stalwart._native")]
struct DkimBodyHasher {
    inner: Option<BodyHasher>,
}

#[pymethods]
impl DkimBodyHasher {
    #[new]
    #[pyo3(signature = (relaxed, limit = None))]
    fn new(relaxed: bool, limit: Option<u64>) -> Self {
        DkimBodyHasher { inner: Some(BodyHasher::new(relaxed, limit)) }
    }

    fn update(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let inner = self.inner.as_mut().ok_or_else(|| PyValueError::new_err("hasher already finished"))?;
        if data.len() > RELEASE_GIL {
            py.allow_threads(|| inner.update(data));
        } else {
            inner.update(data);
        }
        Ok(())
    }

    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Digest<'py>> {
        let inner = self.inner.take().ok_or_else(|| PyValueError::new_err("hasher already finished"))?;
        let (digest, length) = inner.finish();
        Ok((PyBytes::new(py, &digest), length))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dkim_split, m)?)?;
    m.add_function(wrap_pyfunction!(dkim_relaxed_header, m)?)?;
    m.add_function(wrap_pyfunction!(dkim_strip_b_value, m)?)?;
    m.add_function(wrap_pyfunction!(dkim_header_data, m)?)?;
    m.add_function(wrap_pyfunction!(dkim_body_hash, m)?)?;
    m.add_function(wrap_pyfunction!(dkim_canonical_body, m)?)?;
    m.add_class::<DkimBodyHasher>()?;
    Ok(())
}
