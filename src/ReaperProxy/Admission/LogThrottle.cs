namespace ReaperProxy.Admission;

/// <summary>
/// Counts events a hostile or broken peer can cause at will (refusals, bad requests) and lets one log line
/// through per interval, carrying how many happened since the last: a flood of them must not flood the log.
/// Lock-free.
/// </summary>
internal sealed class LogThrottle
{
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private long _sinceLog;
    private long _lastLog = long.MinValue;

    public LogThrottle(TimeProvider time, TimeSpan interval)
    {
        _time = time;
        _interval = interval;
    }

    /// <summary>One more event.</summary>
    public void Count() => Interlocked.Increment(ref _sinceLog);

    /// <summary>
    /// True at most once per interval, with how many events were counted since the last line (the one
    /// just counted included).
    /// </summary>
    public bool ShouldLog(out long count)
    {
        var now = _time.GetTimestamp();
        var last = Volatile.Read(ref _lastLog);
        if ((last != long.MinValue && _time.GetElapsedTime(last, now) < _interval) ||
            Interlocked.CompareExchange(ref _lastLog, now, last) != last)
        {
            count = 0;
            return false;
        }

        count = Interlocked.Exchange(ref _sinceLog, 0);
        return true;
    }
}
