; ganfriends per-user installer: no administrator rights, installs the app dir to
; %LOCALAPPDATA%\Programs\ganfriends with a Start-menu shortcut. The uninstaller removes
; exactly the installed files and keeps the user's data (%LOCALAPPDATA%\ganfriends: the
; private environment, settings, logs).
; build_windows.py defines OUTFILE, ICON, VERSION, APPDIR and FILES (an include with the
; File and Delete lines for every file of the app dir).
Unicode true
Name "ganfriends"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\ganfriends"
InstallDirRegKey HKCU "Software\ganfriends-installer" "InstallDir"
RequestExecutionLevel user
SetCompressor /SOLID lzma
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "ganfriends"
VIAddVersionKey "FileDescription" "ganfriends installer"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "ganfriends contributors, MIT licence"

!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\ganfriends"
!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_FINISHPAGE_RUN "$INSTDIR\ganfriends.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ganfriends (the first start downloads PyTorch, several GB)"
!include MUI2.nsh
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

!macro APP_FILES_INSTALL
  !define FILES_INSTALL
  !include "${FILES}"
  !undef FILES_INSTALL
!macroend

!macro APP_FILES_UNINSTALL
  !define FILES_UNINSTALL
  !include "${FILES}"
  !undef FILES_UNINSTALL
!macroend

Section "ganfriends"
  SetOutPath "$INSTDIR"
  !insertmacro APP_FILES_INSTALL
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortcut "$SMPROGRAMS\ganfriends.lnk" "$INSTDIR\ganfriends.exe" "" "$INSTDIR\ganfriends.exe" 0
  WriteRegStr HKCU "Software\ganfriends-installer" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "ganfriends"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "ganfriends contributors"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\ganfriends.exe"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

Section "Uninstall"
  !insertmacro APP_FILES_UNINSTALL
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\ganfriends.lnk"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "Software\ganfriends-installer"  ; not Software\ganfriends: Qt keeps settings there
  ; %LOCALAPPDATA%\ganfriends (environment, settings, logs) is the user's: it stays.
SectionEnd
