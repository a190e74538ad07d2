//! A real PACS for the tests and benchmarks: Debian's Orthanc with its DICOMweb plugin, one
//! per test on its own port and storage, with basic authentication.
#![allow(dead_code)] // the benchmarks use a part of it

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

pub const USER: &str = "seglab";
pub const PASSWORD: &str = "pacs-secret";

/// An Orthanc server of one test, stopped when dropped.
pub struct Orthanc {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Orthanc {
    pub async fn start() -> Orthanc {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = json!({
            "Name": "seglab-test",
            "StorageDirectory": dir.path().join("db"),
            "IndexDirectory": dir.path().join("db"),
            "HttpPort": port,
            "DicomServerEnabled": false,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": true,
            "RegisteredUsers": { USER: PASSWORD },
            "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
        });
        std::fs::write(dir.path().join("orthanc.json"), config.to_string()).unwrap();
        let child = Self::spawn(dir.path());
        let orthanc = Orthanc { child, url: format!("http://127.0.0.1:{port}"), dir };
        orthanc.wait_until_up().await;
        orthanc
    }

    fn spawn(dir: &Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("orthanc.log")).unwrap();
        Command::new("Orthanc")
            .arg(dir.join("orthanc.json"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Orthanc (Debian's orthanc and orthanc-dicomweb; `.ci/setup test` installs them)")
    }

    async fn wait_until_up(&self) {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let up = client.get(format!("{}/system", self.url)).basic_auth(USER, Some(PASSWORD)).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("Orthanc did not start: {}", std::fs::read_to_string(self.dir.path().join("orthanc.log")).unwrap());
    }

    /// Starts it again after [`Orthanc::stop`], on the same port and storage.
    pub async fn restart(&mut self) {
        self.child = Self::spawn(self.dir.path());
        self.wait_until_up().await;
    }

    pub fn dicomweb(&self) -> String {
        format!("{}/dicom-web", self.url)
    }

    /// Stores every file of `folder` in Orthanc.
    pub async fn upload(&self, folder: &Path) {
        let client = reqwest::Client::new();
        let mut files: Vec<_> = std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let response = client
                .post(format!("{}/instances", self.url))
                .basic_auth(USER, Some(PASSWORD))
                .body(std::fs::read(file).unwrap())
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "upload to Orthanc: {}", response.status());
        }
    }

    /// Orthanc's own REST API, as JSON.
    pub async fn rest(&self, path: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.unwrap()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        self.stop();
    }
}
