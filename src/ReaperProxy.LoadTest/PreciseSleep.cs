using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ReaperProxy.LoadTest;

/// <summary>
/// Sleeps with the kernel's timer resolution (tens of µs, the thread's timer slack) instead of the
/// millisecond of <c>Thread.Sleep</c> and <c>Task.Delay</c>. The open-loop client measures latency
/// from each message's intended send time, so a pacer that wakes a millisecond late adds that
/// millisecond to every sample; spinning instead would take a whole core of a 2-core machine from the
/// proxy under test.
/// </summary>
internal static class PreciseSleep
{
    private const int ClockMonotonic = 1;
    private const int Interrupted = 4; // EINTR
    private const int SetTimerSlack = 29; // PR_SET_TIMERSLACK

    /// <summary>
    /// Asks the kernel to wake the calling thread as close to its deadline as it can: a normal thread's
    /// timer slack is 50 µs, which would be added to every paced send.
    /// </summary>
    public static void TightenTimerSlack() => _ = Prctl(SetTimerSlack, 1, 0, 0, 0);

    /// <summary>Sleeps until <paramref name="timestamp"/> (a <see cref="Stopwatch"/> timestamp); returns at once when it is past.</summary>
    public static void Until(long timestamp)
    {
        var remaining = timestamp - Stopwatch.GetTimestamp();
        while (remaining > 0)
        {
            var nanoseconds = (long)(remaining * (1e9 / Stopwatch.Frequency));
            var request = new Timespec(nanoseconds / 1_000_000_000, nanoseconds % 1_000_000_000);
            // Relative sleep: no assumption about which clock Stopwatch reads. On EINTR (a signal such as
            // SIGTERM) the loop recomputes what is left.
            var error = ClockNanosleep(ClockMonotonic, 0, in request, IntPtr.Zero);
            if (error != 0 && error != Interrupted)
            {
                Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, remaining * TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
            }

            remaining = timestamp - Stopwatch.GetTimestamp();
        }
    }

    // clock_nanosleep(2) returns the error number itself (it does not set errno).
    [DllImport("libc", EntryPoint = "clock_nanosleep")]
    private static extern int ClockNanosleep(int clockId, int flags, in Timespec request, IntPtr remain);

    [DllImport("libc", EntryPoint = "prctl")]
    private static extern int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct Timespec(long seconds, long nanoseconds)
    {
        public readonly long Seconds = seconds;
        public readonly long Nanoseconds = nanoseconds;
    }
}
