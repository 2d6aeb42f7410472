using System.Runtime.InteropServices;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>POSIX signals to a child process (Linux): SIGTERM for a graceful stop, SIGSTOP/SIGCONT to freeze and thaw, SIGKILL.</summary>
public static class Signals
{
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigCont = 18;
    public const int SigStop = 19;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if it could not be sent (e.g. the process is gone).</summary>
    public static bool TrySend(int pid, int signal) => Kill(pid, signal) == 0;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; throws if it could not be sent.</summary>
    public static void Send(int pid, int signal)
    {
        if (Kill(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
