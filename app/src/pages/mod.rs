pub mod activity;
pub mod home;
pub mod login;
pub mod models;
pub mod settings;
