//! pyo3 glue of the full-text index (`fts/`): tokenizing runs without the GIL; posting
//! list errors (a corrupt stored value, unsorted input) become ValueError.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::fts::{self, postings, tokenize};

fn value_error(e: postings::Error) -> PyErr {
    PyValueError::new_err(e.0)
}

fn stemmer(language: &str) -> PyResult<Option<tokenize::Stemmer>> {
    tokenize::stemmer(language).map_err(PyValueError::new_err)
}

/// Terms of a document's `(field, text)` parts: {"field:term": [positions]}.
#[pyfunction]
#[pyo3(signature = (parts, language = "en"))]
fn fts_index(py: Python<'_>, parts: Vec<(String, String)>, language: &str) -> PyResult<fts::FxMap<String, Vec<u32>>> {
    let stemmer = stemmer(language)?;
    Ok(py.allow_threads(|| fts::index(&parts, stemmer.as_ref())))
}

/// The terms of a text, in order (folded and stemmed as at indexing).
#[pyfunction]
#[pyo3(signature = (text, language = "en"))]
fn fts_terms(py: Python<'_>, text: &str, language: &str) -> PyResult<Vec<String>> {
    let stemmer = stemmer(language)?;
    Ok(py.allow_threads(|| tokenize::terms(text, stemmer.as_ref())))
}

/// The ISO 639-1 code of the language of `text` (one of `FTS_DETECTED`), or "none".
#[pyfunction]
fn fts_detect_language(py: Python<'_>, text: &str) -> &'static str {
    py.allow_threads(|| fts::language::detect(text))
}

#[pyfunction]
fn fts_encode<'py>(py: Python<'py>, entries: Vec<(u32, Vec<u32>)>) -> PyResult<Bound<'py, PyBytes>> {
    let blob = postings::encode(&entries).map_err(value_error)?;
    Ok(PyBytes::new(py, &blob))
}

#[pyfunction]
fn fts_decode(blob: &[u8]) -> PyResult<Vec<(u32, Vec<u32>)>> {
    postings::decode(blob).map_err(value_error)
}

#[pyfunction]
fn fts_docs(blob: &[u8]) -> PyResult<Vec<u32>> {
    postings::docs(blob).map_err(value_error)
}

#[pyfunction]
#[pyo3(signature = (blob, doc, positions))]
fn fts_upsert<'py>(
    py: Python<'py>,
    blob: Option<&[u8]>,
    doc: u32,
    positions: Vec<u32>,
) -> PyResult<Bound<'py, PyBytes>> {
    let out = postings::upsert(blob, doc, &positions).map_err(value_error)?;
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
fn fts_remove<'py>(py: Python<'py>, blob: &[u8], docs: Vec<u32>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let out = postings::remove(blob, &docs).map_err(value_error)?;
    Ok(out.map(|b| PyBytes::new(py, &b)))
}

#[pyfunction]
fn fts_intersect(blobs: Vec<Vec<u8>>) -> PyResult<Vec<u32>> {
    let views: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    postings::intersect(&views).map_err(value_error)
}

#[pyfunction]
fn fts_phrase(blobs: Vec<Vec<u8>>) -> PyResult<Vec<u32>> {
    let views: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    postings::phrase(&views).map_err(value_error)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FTS_LANGUAGES", tokenize::LANGUAGES.to_vec())?;
    m.add("FTS_MAX_WORD_BYTES", tokenize::MAX_WORD_BYTES)?;
    m.add("FTS_DETECTED", fts::language::DETECTED.to_vec())?;
    m.add_function(wrap_pyfunction!(fts_detect_language, m)?)?;
    m.add_function(wrap_pyfunction!(fts_index, m)?)?;
    m.add_function(wrap_pyfunction!(fts_terms, m)?)?;
    m.add_function(wrap_pyfunction!(fts_encode, m)?)?;
    m.add_function(wrap_pyfunction!(fts_decode, m)?)?;
    m.add_function(wrap_pyfunction!(fts_docs, m)?)?;
    m.add_function(wrap_pyfunction!(fts_upsert, m)?)?;
    m.add_function(wrap_pyfunction!(fts_remove, m)?)?;
    m.add_function(wrap_pyfunction!(fts_intersect, m)?)?;
    m.add_function(wrap_pyfunction!(fts_phrase, m)?)?;
    Ok(())
}
