//! Connvo's domain: tables and functions, one module per domain.
//!
//! * [`ids`] — typed document ids (`Id<Users>`, `Id<Meetings>`, …);
//! * [`auth`] — authorization guards (`require_user`, `require_meeting_role`);
//! * [`testing`] — a small set of functions used by the protocol, end-to-end,
//!   crash and benchmark tests (registered only when test functions are
//!   enabled, `connvo serve --test-functions`).
//!
//! The binary builds the schema with [`schema`] and the registry with
//! [`register`].

use database::{Schema, TableDef};
use errors::Result;
use runtime::Registry;

pub mod auth;
pub mod ids;
pub mod interests;
pub mod meetings;
pub mod messaging;
pub mod notes;
pub mod profiles;
pub mod settings;
pub mod system;
pub mod testing;
pub mod transcripts;
pub mod users;

/// Which function sets to register.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelOptions {
    /// Register the `testing/*` functions.
    pub test_functions: bool,
}

/// All tables: domain tables, test tables and the runtime's system tables.
pub fn schema() -> Result<Schema> {
    let mut tables: Vec<TableDef> = runtime::system_tables();
    tables.extend(system::tables());
    tables.extend(users::tables());
    tables.extend(profiles::tables());
    tables.extend(settings::tables());
    tables.extend(interests::tables());
    tables.extend(meetings::tables());
    tables.extend(messaging::tables());
    tables.extend(notes::tables());
    tables.extend(transcripts::tables());
    tables.extend(testing::tables());
    Schema::builder().tables(tables).build()
}

/// Registers every function and cron.
pub fn register(registry: &mut Registry, options: ModelOptions) {
    system::register(registry);
    users::register(registry);
    profiles::register(registry);
    settings::register(registry);
    interests::register(registry);
    meetings::register(registry);
    messaging::register(registry);
    notes::register(registry);
    transcripts::register(registry);
    if options.test_functions {
        testing::register(registry);
    }
}

/// Every group of tables that holds a user's personal data, in export
/// order (`users/queries:exportMyData`); account deletion
/// (`users/mutations:deleteMyAccount`) erases them in reverse order. A
/// domain that stores personal data adds its [`users::data_protection::DataSection`]s here.
pub fn data_sections() -> Vec<users::data_protection::DataSection> {
    let mut sections = users::data_protection::sections();
    sections.extend(meetings::data_sections());
    sections.extend(messaging::data_sections());
    sections.extend(notes::data_sections());
    sections.extend(transcripts::data_sections());
    sections
}

/// Start-up work, run by the binary once the runtime exists and before it
/// serves: seeds the interest catalog if it is empty.
pub async fn on_start(runtime: &runtime::Runtime) -> Result<()> {
    runtime
        .call(
            runtime::FunctionKind::Mutation,
            "interests/queries:seedDefault",
            values::Value::object(Vec::<(String, values::Value)>::new()),
            None,
        )
        .await?;
    Ok(())
}
