; ganfriends.exe: the launcher the shortcuts run. It starts the launch contract
; (uv runs the bootstrapper from this folder) without waiting for it. The console stays
; hidden once the private environment exists; on the first run it is shown, because the
; bootstrapper prints its download progress (several GB) there.
; build_windows.py defines OUTFILE, ICON, VERSION and LAUNCH (the uv arguments with $EXEDIR).
Unicode true
Name "ganfriends"
OutFile "${OUTFILE}"
Icon "${ICON}"
RequestExecutionLevel user
SilentInstall silent
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "ganfriends"
VIAddVersionKey "FileDescription" "ganfriends launcher"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "ganfriends contributors, MIT licence"

!include FileFunc.nsh

Section
  ${GetParameters} $0
  ReadEnvStr $1 GANFRIENDS_HOME
  StrCmp $1 "" 0 +2
    StrCpy $1 "$LOCALAPPDATA\ganfriends"
  IfFileExists "$1\env\ganfriends-stamp.json" hidden
    ExecShell "open" '"$EXEDIR\uv.exe"' '${LAUNCH} $0' SW_SHOWNORMAL
    Goto done
  hidden:
    ExecShell "open" '"$EXEDIR\uv.exe"' '${LAUNCH} $0' SW_HIDE
  done:
SectionEnd
