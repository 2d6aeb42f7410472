using System.Globalization;

namespace ReaperProxy.Admission;

/// <summary>
/// Caps the WebSockets proxied at once (every mode, Off included). Each costs the process two file
/// descriptors (client and backend sockets); a process that runs out of descriptors cannot even start
/// a thread, and the .NET runtime then dies with "Out of memory", taking every live connection with it.
/// Refusing the next WebSocket with 503 is the lesser harm. Lock-free: one interlocked counter.
/// </summary>
internal sealed class ConnectionLimiter
{
    private static readonly TimeSpan s_logInterval = TimeSpan.FromSeconds(10);
    private readonly TimeProvider _time;
    private int _open;
    private long _refusedSinceLog;
    private long _lastLog;

    public ConnectionLimiter(TimeProvider time)
    {
        _time = time;
        _lastLog = long.MinValue;
    }

    /// <summary>WebSockets holding a slot now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>Takes a slot if fewer than <paramref name="max"/> are taken; pair a true result with <see cref="Exit"/>.</summary>
    public bool TryEnter(int max)
    {
        if (Interlocked.Increment(ref _open) <= max)
        {
            return true;
        }

        Interlocked.Decrement(ref _open);
        Interlocked.Increment(ref _refusedSinceLog);
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _open);

    /// <summary>
    /// After a refusal: true at most once per 10 s (a flood of refusals must not flood the log), with
    /// how many were refused since the last line, this one included.
    /// </summary>
    public bool ShouldLog(out long refused)
    {
        var now = _time.GetTimestamp();
        var last = Volatile.Read(ref _lastLog);
        if ((last != long.MinValue && _time.GetElapsedTime(last, now) < s_logInterval) ||
            Interlocked.CompareExchange(ref _lastLog, now, last) != last)
        {
            refused = 0;
            return false;
        }

        refused = Interlocked.Exchange(ref _refusedSinceLog, 0);
        return true;
    }

    /// <summary>The cap when <c>Reaper:MaxConnections</c> is not set: derived from this process's open-file limit.</summary>
    public static int Automatic { get; } = FromOpenFileLimit(ReadOpenFileLimit());

    /// <summary>
    /// Two descriptors per WebSocket, after a reserve for everything else the process holds (its
    /// assemblies alone keep about 250 open, plus HTTP traffic, logs, admin scrapes): 5% of the limit,
    /// at least 512. 20,000 descriptors give 9,500 WebSockets. No known limit: no cap.
    /// </summary>
    public static int FromOpenFileLimit(long? limit)
    {
        if (limit is not { } files || files >= int.MaxValue)
        {
            return int.MaxValue;
        }

        var reserve = Math.Max(512, files / 20);
        return (int)Math.Max(1, (files - reserve) / 2);
    }

    /// <summary>The soft "Max open files" of this process (Linux, /proc/self/limits); null when unknown or unlimited.</summary>
    public static long? ReadOpenFileLimit()
    {
        try
        {
            return File.Exists("/proc/self/limits") ? ParseOpenFileLimit(File.ReadAllText("/proc/self/limits")) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Reads the soft limit from the text of /proc/PID/limits.</summary>
    public static long? ParseOpenFileLimit(string limits)
    {
        const string Name = "Max open files";
        foreach (var line in limits.Split('\n'))
        {
            if (line.StartsWith(Name, StringComparison.Ordinal))
            {
                var fields = line[Name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var soft) && soft > 0
                    ? soft
                    : null;
            }
        }

        return null;
    }
}
