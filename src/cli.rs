//! The `seglab` command: parse, connect, dispatch. `serve` starts the app through
//! [`Application`]; the one-shot commands use the services directly.

use std::net::SocketAddr;

use leptos::config::LeptosOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::UserChange;
use crate::server::config::{
    AuditCommand, BackupArgs, BackupCommand, Cli, Command, Config, DatasetCommand, ExportLayout, ImportArgs,
    ImportDicomArgs, ObjectsCommand, RoleCommand, ServeArgs, TokenCommand, UserCommand,
};
use crate::server::db::Db;
use crate::server::demo;
use crate::server::dicom::headers::SourceFile;
use crate::server::dicom::{self, SeriesChoice};
use crate::server::error::{AppError, CliError};
use crate::server::identity::Role;
use crate::server::services::audit::{self, verify_chain};
use crate::server::services::cases::{import_case, parse_label_names, CaseFile, NewCase};
use crate::server::services::datasets::{self, ExportFormat};
use crate::server::services::dicom_import::{self, DicomImport};
use crate::server::services::users::add_user;
use crate::server::services::{accounts, backup, integrity};
use crate::server::state::AppState;
use crate::startup::Application;

/// One-shot commands render no pages.
fn no_pages() -> LeptosOptions {
    LeptosOptions::builder().output_name("seglab").build()
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
fn cancel_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::from_env()));
    // One-shot commands that need object storage run their own embedded S3 on a free port; the
    // store is safe to share with a running server. The others use the database alone.
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let result = match command {
        Command::Serve(args) => {
            cancel_on_signal(shutdown.clone());
            let app = Application::build(cli.config, &args, shutdown.clone(), &tasks).await?;
            serve(app, &args).await
        }
        Command::Import(args) => {
            let state = AppState::connect(cli.config, any_port, no_pages(), shutdown.clone(), &tasks).await?;
            import(&state, args).await
        }
        Command::ImportDicom(args) => {
            let state = AppState::connect(cli.config, any_port, no_pages(), shutdown.clone(), &tasks).await?;
            import_dicom(&state, args).await
        }
        Command::User(UserCommand::Add { username, roles, password_stdin }) => {
            let roles = roles
                .iter()
                .map(|r| r.parse())
                .collect::<Result<Vec<Role>, AppError>>()
                .map_err(|e| CliError::Config(e.to_string()))?;
            let password = if password_stdin { Some(read_line()?) } else { None };
            let db = Db::open(&cli.config).await?;
            let (user, token) = add_user(&db, &username, &roles, password.as_deref()).await?;
            let roles: Vec<_> = user.roles.iter().map(|r| r.as_str()).collect();
            println!("created user {} with roles {}", user.username, roles.join(","));
            println!("API token (shown once): {token}");
            Ok(())
        }
        Command::User(UserCommand::Disable { username }) => {
            change_account(&cli.config, &username, UserChange { disabled: Some(true), ..UserChange::default() }).await
        }
        Command::User(UserCommand::Enable { username }) => {
            change_account(&cli.config, &username, UserChange { disabled: Some(false), ..UserChange::default() }).await
        }
        Command::User(UserCommand::Role(RoleCommand::Add { username, role })) => {
            change_account(&cli.config, &username, UserChange { add_roles: vec![role], ..UserChange::default() }).await
        }
        Command::User(UserCommand::Role(RoleCommand::Remove { username, role })) => {
            change_account(&cli.config, &username, UserChange { remove_roles: vec![role], ..UserChange::default() })
                .await
        }
        Command::Token(TokenCommand::Add { username, expires_in_days }) => {
            let issued = accounts::issue_token(&Db::open(&cli.config).await?, None, &username, expires_in_days).await?;
            println!("API token for {username} (shown once): {}", issued.token);
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { token }) => {
            let token = match token {
                Some(token) => token,
                None => read_line()?,
            };
            accounts::revoke_token(&Db::open(&cli.config).await?, None, token.trim()).await?;
            println!("token revoked");
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { expect_head }) => verify_audit(&cli.config, expect_head).await,
        Command::Audit(AuditCommand::Seal) => {
            audit::seal_head(&Db::open(&cli.config).await?).await?;
            println!("the audit chain's head is sealed with the audit key");
            Ok(())
        }
        Command::Audit(AuditCommand::Head) => {
            let (seq, hash) = audit::head(&Db::open(&cli.config).await?).await?;
            println!("{seq}:{hash}");
            Ok(())
        }
        Command::Infer(args) => crate::server::inference::run_child(&args).map_err(CliError::Inference),
        Command::Dataset(DatasetCommand::Export { id, dir, format, dicom_seg }) => {
            let state = AppState::connect(cli.config, any_port, no_pages(), shutdown.clone(), &tasks).await?;
            let format = match format {
                ExportLayout::Nnunet => ExportFormat::Nnunet,
                ExportLayout::Monai => ExportFormat::Monai,
            };
            let written = datasets::export(&state, &id, &dir, format, dicom_seg, |done, total| {
                eprint!("\rexporting: {done}/{total} cases");
                if done == total {
                    eprintln!();
                }
            })
            .await?;
            println!("exported {written} cases of dataset {id} into {}", dir.display());
            Ok(())
        }
        Command::Backup(BackupArgs { check: None, dir: Some(dir) }) => {
            let manifest = backup::take(&Db::open(&cli.config).await?, &dir).await?;
            println!(
                "backed up the database ({} bytes, audit head {}) into {}; it references {} objects, listed in \
                 objects.tsv: copy the object store after this (objects are never overwritten)",
                manifest.database_bytes,
                manifest.audit_head,
                dir.display(),
                manifest.objects
            );
            Ok(())
        }
        Command::Backup(BackupArgs { check: Some(BackupCommand::Verify { dir }), .. }) => {
            let state = AppState::connect(cli.config, any_port, no_pages(), shutdown.clone(), &tasks).await?;
            let verified = backup::verify(&state.db, &state.store, &dir).await?;
            match verified.problems.as_slice() {
                [] => {
                    println!(
                        "backup intact: database as written, {} audit rows verified, all {} objects in storage as recorded",
                        verified.audit_rows, verified.manifest.objects
                    );
                    Ok(())
                }
                problems => Err(CliError::BackupBroken(problems.join("\n"))),
            }
        }
        Command::Backup(BackupArgs { check: None, dir: None }) => {
            Err(CliError::Config("name the folder: `seglab backup DIR` or `seglab backup verify DIR`".into()))
        }
        Command::Objects(ObjectsCommand::Verify) => {
            let state = AppState::connect(cli.config, any_port, no_pages(), shutdown.clone(), &tasks).await?;
            let report = integrity::verify_objects(&state).await?;
            match report.problems.as_slice() {
                [] => {
                    println!("objects intact: {} objects match their recorded size and SHA-256", report.checked);
                    Ok(())
                }
                problems => Err(CliError::ObjectsBroken { checked: report.checked, problems: problems.join("\n") }),
            }
        }
    };
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

/// Checks the chain, and that it still holds a head exported earlier.
async fn verify_audit(config: &Config, expect_head: Option<String>) -> Result<(), CliError> {
    let db = Db::open(config).await?;
    let report = verify_chain(&db).await?;
    if let Some((seq, reason)) = report.first_broken {
        return Err(CliError::AuditBroken { seq, rows: report.rows, reason });
    }
    if let Some(expected) = expect_head {
        let (seq, hash) = expected
            .split_once(':')
            .and_then(|(seq, hash)| Some((seq.parse::<i64>().ok()?, hash.to_string())))
            .ok_or_else(|| {
                CliError::Config(format!("--expect-head {expected:?}: use SEQ:HASH as `audit head` prints it"))
            })?;
        if audit::hash_of(&db, seq).await?.as_deref() != Some(hash.as_str()) {
            let reason = "it differs from the head exported earlier: the log was rewritten".to_string();
            return Err(CliError::AuditBroken { seq, rows: report.rows, reason });
        }
    }
    println!("audit log intact: {} rows, hash chain verified", report.rows);
    Ok(())
}

async fn change_account(config: &Config, username: &str, change: UserChange) -> Result<(), CliError> {
    let account = accounts::change_user(&Db::open(config).await?, None, username, &change).await?;
    let state = if account.disabled { "disabled" } else { "enabled" };
    println!("user {} is {state}, with roles {}", account.username, account.roles.join(","));
    Ok(())
}

/// One line of standard input, without its line end.
fn read_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|source| CliError::Read { path: "standard input".into(), source })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn serve(app: Application, args: &ServeArgs) -> Result<(), CliError> {
    let state = app.state();
    // A demo login with every role belongs on a try-out machine, never on a shared deployment.
    if !args.no_demo && state.config.is_embedded_default() {
        if let Some(login) = demo::seed_if_empty(state, args.demo_password.clone()).await? {
            println!("Created demo cases and the user `demo` (all roles), as this is the embedded default.");
            println!("Log in at http://{}/login as demo / {}", app.address(), login.password);
            println!("API token for `demo` (shown once): {}", login.token);
        }
    }
    println!("seglab is running at http://{}", app.address());
    app.run_until_stopped().await
}

/// Imports DICOM series from files, folders and zips where they are.
async fn import_dicom(state: &AppState, args: ImportDicomArgs) -> Result<(), CliError> {
    let mut files = Vec::new();
    for path in args.paths {
        if path.is_dir() {
            files.extend(dicom::files::walk(&path).map_err(CliError::Config)?);
        } else {
            files.push(SourceFile { name: path.display().to_string(), path });
        }
    }
    let import = DicomImport {
        files,
        series: SeriesChoice::parse(args.series.as_deref()),
        name: args.name,
        labels: parse_label_names(&args.labels)?,
    };
    for case in dicom_import::import_dicom(state, None, import).await? {
        println!("imported case {} ({}), {:?} {}", case.id, case.name, case.dims, case.image_voxel_type);
    }
    Ok(())
}

/// Imports the files where they are: the image is checked and stored as a stream.
async fn import(state: &AppState, args: ImportArgs) -> Result<(), CliError> {
    let new_case = NewCase {
        name: args.name,
        image: CaseFile::Path(args.image),
        mask: args.mask.map(CaseFile::Path),
        labels: parse_label_names(&args.labels)?,
        dicom: None,
    };
    let case = import_case(state, None, new_case).await?;
    println!("imported case {} ({}), {:?} {}", case.id, case.name, case.dims, case.image_voxel_type);
    Ok(())
}
