//! Authorizing to the storage account, on Azurite: a SAS works as the account key does; a
//! wrong key, SAS, account or filesystem, or a secret that is not there, stops the agent at
//! start with one line naming which (never a panic, never a retry without end), and no
//! secret is ever printed.

mod support;

use support::azurite::{ACCOUNT_KEY, Azurite};
use support::*;

const SCHEMA: &str = "CREATE TABLE account (accountid INTEGER PRIMARY KEY, name TEXT);
    INSERT INTO account VALUES (1, 'Contoso'), (2, 'Fabrikam');";
const TABLES: &str = "[[table]]\nname = \"account\"\n";

/// A key of the right form that is not the account's.
const WRONG_KEY: &str = "bm90IHRoZSBrZXkgb2YgdGhpcyBhY2NvdW50LCBidXQgb2YgdGhlIHJpZ2h0IGZvcm0=";

/// A workspace whose lake is on `azurite` with the `[lake]` section `section`.
fn workspace(section: String) -> Workspace {
    let mut ws = Workspace::new(SCHEMA);
    ws.lake_section = Some(section);
    ws.write_config("", TABLES);
    ws
}

fn secret_file(ws: &Workspace, name: &str, secret: &str) -> String {
    let path = ws.dir.path().join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path.display().to_string()
}

#[test]
fn a_sas_token_reads_and_writes_the_lake_and_is_never_printed() {
    let azurite = Azurite::start();
    let sas = azurite.account_sas(ACCOUNT_KEY, "sco");
    let mut ws = workspace(String::new());
    let file = secret_file(&ws, "sas", &format!("?{sas}"));
    ws.lake_section =
        Some(azurite.lake_section(&format!("auth = \"sas\"\nsas_token_file = \"{file}\"")));
    ws.write_config("", TABLES);
    let out = ws.sync();
    assert!(out.contains("published generation 1"), "{out}");
    assert_lake_matches_source(&ws, "account", "accountid", None);
    let status = ws.lakelink(&["status", "--config", "{config}"]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    let signature = sas.split("sig=").nth(1).unwrap();
    assert!(
        !printed.contains(signature),
        "status printed the SAS: {printed}"
    );
    assert!(!out.contains(signature), "sync printed the SAS: {out}");
    let lock = ws.lake_file("_lakelink/lock").unwrap();
    assert!(!String::from_utf8_lossy(&lock).contains(signature));
}

#[test]
fn a_wrong_secret_account_or_filesystem_is_named_in_one_line() {
    let azurite = Azurite::start();
    let ws = workspace(String::new());
    let wrong_key = secret_file(&ws, "wrong-key", WRONG_KEY);
    let run = |section: String| {
        let mut ws2 = Workspace::new(SCHEMA);
        ws2.lake_section = Some(section);
        ws2.write_config("", TABLES);
        // `run` as well as `sync`: neither may retry a refusal forever.
        let sync = ws2.failure(&["sync", "--config", "{config}"]);
        let run = ws2.failure(&["run", "--config", "{config}"]);
        assert_eq!(sync, run);
        sync
    };

    let err = run(azurite.lake_section(&format!(
        "auth = \"account_key\"\naccount_key_file = \"{wrong_key}\""
    )));
    assert!(
        err.contains("refused the credential of lake.auth = \"account_key\""),
        "{err}"
    );
    assert!(!err.contains(WRONG_KEY), "{err}");

    let wrong_sas = azurite.account_sas(WRONG_KEY, "sco");
    let sas_file = secret_file(&ws, "wrong-sas", &wrong_sas);
    let err =
        run(azurite.lake_section(&format!("auth = \"sas\"\nsas_token_file = \"{sas_file}\"")));
    assert!(
        err.contains("refused the credential of lake.auth = \"sas\""),
        "{err}"
    );
    assert!(
        !err.contains(wrong_sas.split("sig=").nth(1).unwrap()),
        "{err}"
    );

    // A SAS for one filesystem works on it, but may not create it when it is missing.
    let filesystem_sas = secret_file(&ws, "fs-sas", &azurite.filesystem_sas("crm"));
    let err = run(azurite.lake_section_in(
        "crm",
        &format!("auth = \"sas\"\nsas_token_file = \"{filesystem_sas}\""),
    ));
    assert!(err.contains("lake.filesystem crm does not exist"), "{err}");
    assert!(err.contains("may not create it"), "{err}");
    let mut ws3 = workspace(azurite.lake_section_in("crm", &azurite.account_key_auth()));
    ws3.sync();
    ws3.lake_section = Some(azurite.lake_section_in(
        "crm",
        &format!("auth = \"sas\"\nsas_token_file = \"{filesystem_sas}\""),
    ));
    ws3.write_config("", TABLES);
    ws3.source()
        .execute("INSERT INTO account VALUES (3, 'Northwind')", [])
        .unwrap();
    ws3.sync();
    assert_lake_matches_source(&ws3, "account", "accountid", None);

    // An account whose host does not resolve (.invalid never does).
    let err = run(format!(
        "[lake]\nkind = \"adls\"\naccount = \"nosuchaccount\"\nfilesystem = \"lake\"\nendpoint = \"https://nosuchaccount.invalid\"\nauth = \"account_key\"\naccount_key_file = \"{wrong_key}\"\n"
    ));
    assert!(err.contains("lake.account nosuchaccount"), "{err}");

    let err = run(azurite.lake_section(
        "auth = \"account_key\"\naccount_key_env = \"LAKELINK_TEST_UNSET_VARIABLE\"",
    ));
    assert!(
        err.contains(
            "lake.account_key_env: the environment variable LAKELINK_TEST_UNSET_VARIABLE is not set"
        ),
        "{err}"
    );
}

#[test]
fn a_service_principal_gets_its_token_from_the_authority_host_and_a_wrong_secret_is_named() {
    let ca = support::azurite::TestCa::generate();
    let azurite = Azurite::start_with_tokens(&ca);
    let (client_id, secret) = ("0b9a1b5e-3b5e-4a8e-9f53-7c2d9d0e1c11", "the-right-secret");
    let tokens = support::azurite::TokenEndpoint::start(&ca, client_id, secret);
    let mut ws = workspace(String::new());
    let secret_path = secret_file(&ws, "client-secret", secret);
    let section = |secret_path: &str| {
        azurite.lake_section_in(
            "crm",
            &format!(
                "auth = \"service_principal\"\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\nclient_id = \"{client_id}\"\nclient_secret_file = \"{secret_path}\""
            ),
        )
    };
    ws.lake_section = Some(section(&secret_path));
    ws.write_config("", TABLES);
    // The test CA is the only one trusted; the token endpoint stands in for Entra ID.
    let lakelink = |args: &[&str]| {
        std::process::Command::new(lakelink_bin())
            .args(args)
            .env("RUST_LOG", "warn")
            .env("SSL_CERT_FILE", &ca.ca_cert)
            .env("AZURE_AUTHORITY_HOST", tokens.authority_host())
            .output()
            .expect("run lakelink")
    };
    let config = ws.config.to_str().unwrap().to_string();
    let out = lakelink(&["sync", "--config", &config]);
    assert!(
        out.status.success(),
        "sync with a service principal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("published generation 1"));
    let read = lakelink(&["read", "--config", &config, "account"]);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let rows = parse_csv(&read.stdout);
    assert_eq!(rows.len(), 3, "the header and two rows");

    let wrong = secret_file(&ws, "wrong-secret", "not-the-secret");
    ws.lake_section = Some(section(&wrong));
    ws.write_config("", TABLES);
    let out = lakelink(&["sync", "--config", &config]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let line = err.lines().last().unwrap_or_default();
    assert!(line.starts_with("lakelink: "), "{err}");
    assert!(
        line.contains("lake.auth = \"service_principal\": no token could be had"),
        "{line}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");
}

#[test]
fn a_managed_identity_gets_its_token_from_the_identity_endpoint() {
    let ca = support::azurite::TestCa::generate();
    let azurite = Azurite::start_with_tokens(&ca);
    let (client_id, secret) = ("5d3e7c1a-9f1b-4f0e-8a52-2c6f0b9e4d21", "identity-header");
    let tokens = support::azurite::TokenEndpoint::start(&ca, client_id, secret);
    let mut ws = workspace(String::new());
    let lakelink = |ws: &Workspace, args: &[&str]| {
        let config = ws.config.to_str().unwrap().to_string();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{config}", &config))
            .collect();
        std::process::Command::new(lakelink_bin())
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("SSL_CERT_FILE", &ca.ca_cert)
            .env("IDENTITY_ENDPOINT", tokens.identity_endpoint())
            .env("IDENTITY_HEADER", secret)
            .output()
            .expect("run lakelink")
    };
    // A user-assigned identity, by its client id.
    ws.lake_section = Some(azurite.lake_section_in(
        "crm",
        &format!("auth = \"managed_identity\"\nclient_id = \"{client_id}\""),
    ));
    ws.write_config("", TABLES);
    let out = lakelink(&ws, &["sync", "--config", "{config}"]);
    assert!(
        out.status.success(),
        "sync with a managed identity failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = lakelink(&ws, &["read", "--config", "{config}", "account"]);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(parse_csv(&read.stdout).len(), 3, "the header and two rows");
    // An identity this machine does not have.
    ws.lake_section = Some(azurite.lake_section_in(
        "crm",
        "auth = \"managed_identity\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"",
    ));
    ws.write_config("", TABLES);
    let out = lakelink(&ws, &["sync", "--config", "{config}"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("lakelink: ") && line.contains("lake.auth = \"managed_identity\""),
        "{err}"
    );
}
