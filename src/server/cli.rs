//! The `seglab` command: parse, connect, dispatch.

use std::net::SocketAddr;

use leptos::config::LeptosOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{AuditCommand, Cli, Command, ImportArgs, ObjectsCommand, ServeArgs, UserCommand};
use super::db::Db;
use super::error::{AppError, CliError};
use super::services::audit::verify_chain;
use super::services::cases::{import_case, parse_label_names, NewCase};
use super::services::users::{add_user, Role};
use super::services::{integrity, orchestrator, sweeper};
use super::state::AppState;
use super::{demo, http};

fn leptos_options(args: &ServeArgs) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("seglab")
        .site_root(args.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(args.addr)
        .build()
}

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
            let embedded_addr = cli.config.s3.embedded_s3_addr;
            let state =
                AppState::connect(cli.config, embedded_addr, leptos_options(&args), shutdown.clone(), &tasks)
                    .await?;
            tasks.spawn(sweeper::run(state.clone(), shutdown.clone()));
            orchestrator::start(&state, &shutdown, &tasks);
            serve(state, args, shutdown.clone()).await
        }
        Command::Import(args) => {
            let state =
                AppState::connect(cli.config, any_port, no_pages(), shutdown.clone(), &tasks)
                    .await?;
            import(&state, args).await
        }
        Command::User(UserCommand::Add { username, roles, password_stdin }) => {
            let roles = roles.iter().map(|r| r.parse()).collect::<Result<Vec<Role>, AppError>>().map_err(|e| CliError::Config(e.to_string()))?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(|source| CliError::Read { path: "standard input".into(), source })?;
                Some(line.trim_end_matches(['\r', '\n']).to_string())
            } else {
                None
            };
            let db = Db::open(&cli.config).await?;
            let (user, token) = add_user(&db, &username, &roles, password.as_deref()).await?;
            let roles: Vec<_> = user.roles.iter().map(|r| r.as_str()).collect();
            println!("created user {} with roles {}", user.username, roles.join(","));
            println!("API token (shown once): {token}");
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            let report = verify_chain(&Db::open(&cli.config).await?).await?;
            match report.first_broken {
                None => {
                    println!("audit log intact: {} rows, hash chain verified", report.rows);
                    Ok(())
                }
                Some((seq, reason)) => Err(CliError::AuditBroken { seq, rows: report.rows, reason }),
            }
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

async fn serve(state: AppState, args: ServeArgs, shutdown: CancellationToken) -> Result<(), CliError> {
    if !args.no_demo {
        if let Some(login) = demo::seed_if_empty(&state, args.demo_password.clone()).await? {
            println!("Created demo cases and the user `demo` (all roles).");
            println!("Log in at http://{}/login as demo / {}", args.addr, login.password);
            println!("API token for `demo` (shown once): {}", login.token);
        }
    }
    println!("seglab is running at http://{}", args.addr);
    http::serve(state, &args, shutdown).await
}

async fn import(state: &AppState, args: ImportArgs) -> Result<(), CliError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| CliError::Read { path: path.to_path_buf(), source })
    };
    let new_case = NewCase {
        name: args.name,
        image: read(&args.image)?,
        mask: args.mask.as_deref().map(read).transpose()?,
        labels: parse_label_names(&args.labels)?,
    };
    let case = import_case(state, None, new_case).await?;
    println!("imported case {} ({}), {:?} {}", case.id, case.name, case.dims, case.image_voxel_type);
    Ok(())
}
