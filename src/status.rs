//! `uwsgi-reload status`: PLACEHOLDER until written.
pub fn run(
    _cfg: &crate::cli::Config,
    _rep: &mut crate::report::Reporter,
) -> Result<u8, crate::Error> {
    Err(crate::Error::Usage("status is not implemented yet".into()))
}
