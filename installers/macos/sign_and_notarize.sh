#!/bin/bash
# Sign ganfriends.app, wrap it in a DMG, notarise the DMG with Apple and staple the ticket.
# Runs on a Mac with Xcode's command line tools (codesign, hdiutil, xcrun notarytool/stapler);
# NOT run by this project's CI, which has no Mac.
#
#   python3 installers/build_macos_app.py --out dist          # on any OS: dist/ganfriends.app
#   installers/macos/sign_and_notarize.sh dist/ganfriends.app
#
# Needs, in the environment:
#   SIGN_IDENTITY     "Developer ID Application: Your Name (TEAMID)" (in the login keychain)
#   NOTARY_PROFILE    a notarytool keychain profile, made once with:
#                     xcrun notarytool store-credentials NAME --apple-id ID --team-id TEAMID
# Writes dist/ganfriends-<version>-macos-arm64.dmg next to the app.
set -euo pipefail

APP="${1:?usage: sign_and_notarize.sh path/to/ganfriends.app}"
: "${SIGN_IDENTITY:?set SIGN_IDENTITY to your Developer ID Application identity}"
: "${NOTARY_PROFILE:?set NOTARY_PROFILE to a notarytool keychain profile}"
VERSION="$(/usr/libexec/PlistBuddy -c 'Print :CFBundleShortVersionString' "$APP/Contents/Info.plist")"
DMG="$(dirname "$APP")/ganfriends-$VERSION-macos-$(uname -m).dmg"

sign() {  # hardened runtime and a secure timestamp: both required for notarisation
    codesign --force --timestamp --options runtime --sign "$SIGN_IDENTITY" "$@"
}

echo "==> signing the nested uv binary, then the bundle (inside out, no --deep)"
sign "$APP/Contents/Resources/app/uv"
sign "$APP"
codesign --verify --strict --verbose=2 "$APP"

echo "==> building $DMG"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "ganfriends" -srcfolder "$STAGE" -fs HFS+ -format UDZO "$DMG"
sign "$DMG"

echo "==> notarising (waits for Apple's verdict, usually minutes)"
xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
xcrun stapler staple "$DMG"
xcrun stapler validate "$DMG"
spctl --assess --type open --context context:primary-signature --verbose=2 "$DMG"
echo "==> $DMG is signed, notarised and stapled"
