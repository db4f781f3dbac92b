//! The web UI: pages rendered through `create_app` and parsed, and real-browser scenarios in
//! headless Chromium (skipped without chromedriver unless `COFLUX_UI_TESTS=require`).

#[path = "../support/ui_pages.rs"]
#[macro_use]
mod pages;
#[path = "../support/ui_tree.rs"]
mod ui_tree;

mod browser;
mod html;
mod tabs;
