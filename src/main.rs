use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = seglab::server::config::Cli::parse();
    seglab::server::telemetry::init_logs(cli.config.log_format);
    match seglab::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
