//! Tests of `configs.rs`: listing, reading and following a vassal
//! config's files on a real file system (temporary directories).

use super::*;

#[test]
fn load_reads_a_file_keeping_the_link_name() {
    let base = std::env::temp_dir().join(format!("uwsgi-reload-vc-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let target = base.join("shared.ini");
    std::fs::write(
        &target,
        "[uwsgi]\nsocket = /srv/vassals/%n.sock\nsubscribe2 = server=/run/uwsgi/ss.sock,key=example.com\n",
    )
    .unwrap();
    let link = base.join("app_03.ini");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let c = load_vassal_config(&link).unwrap();
    let dir = std::fs::canonicalize(&base).unwrap();
    assert_eq!(c.name, "app_03.ini");
    assert_eq!(c.dir, format!("{}/", dir.display()));
    assert_eq!(c.node_name().as_deref(), Some("/srv/vassals/app_03.sock"));
    let err = load_vassal_config(&base.join("missing.ini")).unwrap_err();
    assert!(err.message().contains("missing.ini"), "{err:?}");
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_router_config_is_recognised() {
    let d = std::env::temp_dir().join(format!("uwsgi-reload-router-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("fr.ini"),
        "[uwsgi]\nfastrouter = /r/fr.sock\nfastrouter-subscription-server = /r/sub.sock\n",
    )
    .unwrap();
    std::fs::write(
        d.join("app.ini"),
        "[uwsgi]\nsocket = /r/app.sock\nsubscribe2 = server=/r/sub.sock,key=k\n",
    )
    .unwrap();
    let dir = EmperorDir::open(&d, ".ini", false).unwrap();
    assert!(is_router(&dir, "fr.ini"));
    assert!(!is_router(&dir, "app.ini"));
    std::fs::remove_dir_all(&d).unwrap();
}

fn includes_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("uwsgi-reload-inc-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("common")).unwrap();
    d
}

/// A relative include is opened from the config's directory and read
/// into its options; `%d` there is the included file's real directory.
#[test]
fn a_relative_include_is_read_from_the_config_s_directory() {
    let d = includes_dir("rel");
    std::fs::write(
        d.join("common/base.ini"),
        "[uwsgi]\nsocket = %dapp.sock\nsubscribe2 = server=/r/ss.sock,key=k\n",
    )
    .unwrap();
    std::fs::write(d.join("app.ini"), "[uwsgi]\nini = common/base.ini\n").unwrap();
    let c = load_vassal_config(&d.join("app.ini")).unwrap();
    let real = std::fs::canonicalize(&d).unwrap();
    assert_eq!(
        c.node_name(),
        Some(format!("{}/common/app.sock", real.display()))
    );
    assert_eq!(c.followed_includes, ["common/base.ini"]);
    assert!(c.includes.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

/// An included link is never followed (the tool is root, the link is
/// the app user's), even to a harmless file: recorded, not read.
#[test]
fn an_included_symlink_is_not_followed() {
    let d = includes_dir("link");
    std::fs::write(d.join("common/real.ini"), "[uwsgi]\nsocket = /secret\n").unwrap();
    std::os::unix::fs::symlink(d.join("common/real.ini"), d.join("common/link.ini")).unwrap();
    std::fs::write(d.join("app.ini"), "[uwsgi]\ninclude = common/link.ini\n").unwrap();
    let c = load_vassal_config(&d.join("app.ini")).unwrap();
    assert_eq!(c.includes, ["common/link.ini"]);
    assert!(c.sockets.is_empty(), "{c:?}");
    assert!(
        c.warnings.iter().any(|w| w.contains("symbolic link")),
        "{:?}",
        c.warnings
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// A FIFO with no writer as an include: refused at once, not followed.
#[test]
fn a_fifo_include_never_blocks() {
    let d = includes_dir("fifo");
    let fifo = d.join("common/f.ini");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::fs::write(
        d.join("app.ini"),
        "[uwsgi]\nini = common/f.ini\nsocket = /a\n",
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let app = d.join("app.ini");
    std::thread::spawn(move || tx.send(load_vassal_config(&app)).unwrap());
    let c = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("reading a FIFO include blocked");
        })
        .unwrap();
    assert_eq!(c.includes, ["common/f.ini"]);
    assert_eq!(c.sockets, ["/a"]);
    assert!(
        c.warnings.iter().any(|w| w.contains("a FIFO")),
        "{:?}",
        c.warnings
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// An include over what is left of `MAX_CONFIG_BYTES` is not read.
#[test]
fn an_oversized_include_is_not_followed() {
    let d = includes_dir("big");
    let big = d.join("common/big.ini");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_CONFIG_BYTES)
        .unwrap();
    std::fs::write(
        d.join("app.ini"),
        "[uwsgi]\nini = common/big.ini\nsocket = /a\n",
    )
    .unwrap();
    let c = load_vassal_config(&d.join("app.ini")).unwrap();
    assert_eq!(c.includes, ["common/big.ini"]);
    assert_eq!(c.sockets, ["/a"]);
    assert!(
        c.warnings.iter().any(|w| w.contains("refused")),
        "{:?}",
        c.warnings
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Root reads the includes, but only what the config's owner could
/// read: a root-only file's section would otherwise reach a
/// subscription key (sent to the router, shown in its stats).
#[test]
fn an_include_its_owner_could_not_read_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) != 0 {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let d = includes_dir("owner");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = d.join("common/debian.cnf");
    std::fs::write(&secret, "[client]\npassword = s3cr3t\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let app = d.join("app.ini");
    std::fs::write(
        &app,
        "[uwsgi]\nini = common/debian.cnf:client\nsocket = /run/b.sock\nsubscribe2 = server=/r/ss.sock,key=%(password).example\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&app, Some(65534), Some(65534)).unwrap();
    let c = load_vassal_config(&app).unwrap();
    assert!(
        !c.subscriptions.iter().any(|s| s.key.contains("s3cr3t")),
        "{:?}",
        c.subscriptions
    );
    assert_eq!(c.includes, ["common/debian.cnf:client"]);
    // World-readable behind open directories: the owner could read it.
    std::fs::set_permissions(d.join("common"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = load_vassal_config(&app).unwrap();
    assert!(c.includes.is_empty(), "{:?}", c.includes);
    std::fs::remove_dir_all(&d).unwrap();
}
