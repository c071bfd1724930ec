use std::io::Read;

use clap::{Parser, Subcommand};
use repairdesk::config::Settings;
use repairdesk::startup::{self, Application};

#[derive(Parser)]
#[command(name = "repairdesk", version, about = "Repair desk backend; with no command it serves")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin user, reading the password from standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env().map_err(anyhow::Error::msg)?;
    repairdesk::telemetry::init(settings.log_json);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_web::rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
        })
        .block_on(async move {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
            Ok(())
        }),
        Command::Migrate => {
            let mut conn = repairdesk::db::connect_once(&settings.database_url)?;
            repairdesk::db::migrate_connection(&mut conn)?;
            drop(conn);
            println!("migrations applied");
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { username, password_stdin } } => {
            anyhow::ensure!(password_stdin, "pass --password-stdin and the password on standard input");
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            repairdesk::auth::password::check_rules(&password).map_err(|m| anyhow::anyhow!("password {m}"))?;
            let username =
                repairdesk::domain::user::Username::parse(&username).map_err(|m| anyhow::anyhow!("username {m}"))?;
            let mut conn = repairdesk::db::connect_once(&settings.database_url)?;
            repairdesk::db::migrate_connection(&mut conn)?;
            anyhow::ensure!(
                !repairdesk::db::users::username_taken(&mut conn, username.as_str())?,
                "username {} is taken",
                username.as_str()
            );
            startup::create_user(&mut conn, username.as_str(), &password, username.as_str(), "admin")?;
            drop(conn);
            println!("admin created");
            Ok(())
        }
    }
}
