#!/usr/bin/env bash
# The PACS of the end-to-end tests: a fresh Orthanc with its DICOMweb plugin on 127.0.0.1:8043,
# and the DICOM series the tests upload to it, written from the MNI152 template.
set -euo pipefail
cd "$(dirname "$0")"
dir=../target/e2e-orthanc
rm -rf "$dir" && mkdir -p "$dir"
[ -d ../target/e2e-dicom/oblique ] ||
  ../target/pyenv/bin/python ../tests/interop/dicom_series.py ../target/testdata/mni152_t1.nii.gz ../target/e2e-dicom >/dev/null
cat > "$dir/orthanc.json" <<JSON
{
  "Name": "seglab-e2e",
  "StorageDirectory": "$PWD/$dir/db",
  "IndexDirectory": "$PWD/$dir/db",
  "HttpPort": 8043,
  "DicomServerEnabled": false,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true,
  "RegisteredUsers": { "seglab": "pacs-e2e-password" },
  "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/" }
}
JSON
exec Orthanc --logfile="$dir/orthanc.log" "$dir/orthanc.json"
