@echo off
rem ganfriends-service.cmd login | install [INVITE_CODE] | uninstall
rem The MSI's custom actions (run as SYSTEM). login (START_AT_LOGIN=1): the app starts at every
rem user's login. install (WORKER_SERVICE=1): writes the invite to
rem %ProgramData%\ganfriends\worker.env, readable only by SYSTEM, Administrators and LOCAL
rem SERVICE; registers the scheduled task \ganfriends\worker from the XML beside this file;
rem starts it. uninstall: ends and deletes the task, removes worker.env and the login entry.
setlocal
set "HERE=%~dp0"
set "CONF=%ProgramData%\ganfriends"
set "RUNKEY=HKLM\Software\Microsoft\Windows\CurrentVersion\Run"
if /i "%~1"=="login" goto login
if /i "%~1"=="install" goto install
if /i "%~1"=="uninstall" goto uninstall
echo usage: ganfriends-service.cmd login ^| install [INVITE_CODE] ^| uninstall 1>&2
exit /b 2

:login
reg add "%RUNKEY%" /v ganfriends /t REG_SZ /d "\"%HERE%ganfriends.exe\"" /f >nul || exit /b 1
exit /b 0

:install
if not exist "%CONF%" mkdir "%CONF%"
if not "%~2"=="" (
  > "%CONF%\worker.env" echo GANFRIENDS_INVITE=%~2
)
if not exist "%CONF%\worker.env" (
  echo no invite code: install with INVITE_CODE=... or write %CONF%\worker.env 1>&2
  exit /b 1
)
icacls "%CONF%\worker.env" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F *S-1-5-19:R >nul || exit /b 1
schtasks /Create /TN "ganfriends\worker" /XML "%HERE%ganfriends-worker-task.xml" /F >nul || exit /b 1
schtasks /Run /TN "ganfriends\worker" >nul
exit /b 0

:uninstall
schtasks /End /TN "ganfriends\worker" >nul 2>&1
schtasks /Delete /TN "ganfriends\worker" /F >nul 2>&1
reg delete "%RUNKEY%" /v ganfriends /f >nul 2>&1
del /q "%CONF%\worker.env" 2>nul
rmdir "%CONF%" 2>nul
exit /b 0
