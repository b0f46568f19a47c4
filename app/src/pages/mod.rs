pub mod activity;
pub mod home;
pub mod login;
pub mod settings;
