//! A headless Chromium driven over WebDriver (chromedriver + fantoccini), for testing the review
//! page the way a reviewer uses it. CI installs Debian's `chromium` and `chromium-driver` and sets
//! `MACIE_PIPELINE_REQUIRE_BROWSER=1`, so there a missing browser fails the test; elsewhere the
//! test says it was skipped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

/// One browser at a time: each is a few hundred MB and the machines have two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The flags the issue asks for: no sandbox (CI runs as root), no network chatter, no first-run UI.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| on_path(names))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The screen a page is shown on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    pub width: u32,
    pub height: u32,
    /// Emulate a phone (Chrome's device metrics and touch), since a desktop window cannot be
    /// made narrower than 500 px.
    pub phone: bool,
}

impl Screen {
    pub const DESKTOP: Self = Self {
        width: 1280,
        height: 900,
        phone: false,
    };
    /// A 390 x 844 phone (the size of common current models), at one pixel per CSS pixel.
    pub const PHONE: Self = Self {
        width: 390,
        height: 844,
        phone: true,
    };
}

/// A running headless browser.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts Chromium on `screen`, or returns `None` (after saying so) when no browser is
    /// installed and CI did not ask for one.
    pub async fn start(screen: Screen) -> Option<Self> {
        let chromium = program(
            "MACIE_PIPELINE_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let driver = program("MACIE_PIPELINE_CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            assert!(
                std::env::var("MACIE_PIPELINE_REQUIRE_BROWSER").is_err(),
                "a browser is required here but chromium or chromedriver was not found \
                 (install Debian's chromium and chromium-driver, or set MACIE_PIPELINE_CHROMIUM \
                 and MACIE_PIPELINE_CHROMEDRIVER)"
            );
            eprintln!("skipped: no chromium/chromedriver found");
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args: Vec<String> = FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={},{}", screen.width, screen.height));
        let mut options = json!({"binary": chromium, "args": args});
        if screen.phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": screen.width, "height": screen.height, "pixelRatio": 1.0, "touch": true},
            });
        }
        let capabilities = json!({"goog:chromeOptions": options});
        let capabilities = capabilities.as_object().expect("an object").clone();
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let client = loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(err) if start.elapsed() > Duration::from_secs(30) => {
                    panic!("chromedriver at {url} did not start a session: {err}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Some(Self {
            client,
            driver,
            _profile: profile,
            _turn: turn,
        })
    }

    /// Opens `url` (a plain GET, as a mail scanner's pre-fetch is).
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page opens");
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no {css}: {err}"))
            .text()
            .await
            .expect("its text")
    }

    /// The texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("a query")
        {
            texts.push(element.text().await.expect("its text"));
        }
        texts
    }

    /// Presses the first button matching `css`, as a person does, and waits for the next page.
    /// The next page may have the same address (a form posted to where it came from), so the
    /// wait is for the old page's document to go stale.
    pub async fn press(&self, css: &str) {
        let old_page = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("a document");
        self.click(css).await;
        let start = Instant::now();
        while old_page.tag_name().await.is_ok() && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the first element matching `css` (a radio button, a label) and stays on the page.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no {css}: {err}"))
            .click()
            .await
            .expect("the click");
    }

    /// How many pixels the page is wider than the window (0 or less: no sideways scrolling).
    pub async fn overflow(&self) -> i64 {
        self.client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .expect("the script runs")
            .as_i64()
            .expect("a number")
    }

    /// Types `text` into the first field matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no field {css}: {err}"));
        field.clear().await.expect("cleared");
        field.send_keys(text).await.expect("typed");
    }

    /// Whether the first element matching `css` is checked (a radio button).
    pub async fn checked(&self, css: &str) -> bool {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no {css}: {err}"))
            .prop("checked")
            .await
            .expect("a property")
            .is_some_and(|value| value == "true")
    }

    /// The page's HTML as the browser has it.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("a screenshot")
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

/// The body of an `.eml` file: what follows the blank line after the headers.
pub fn eml_body(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).expect("the .eml file");
    text.split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .map(|(_, body)| body.to_owned())
        .expect("headers and a body")
}
