namespace ReaperProxy.Probe.Checks;

/// <summary>
/// What one running check shows while it runs: a short status for the live progress line, and notes
/// (events worth a line of their own when the output is not a terminal). Thread-safe.
/// </summary>
internal sealed class CheckProgress(string check, TimeSpan limit, TimeProvider time)
{
    private readonly object _gate = new();
    private long? _connectedAt;
    private string _status = "connecting";
    private CheckResult? _result;

    /// <summary>A note: the check, the time since its upgrade, the text.</summary>
    public event Action<CheckProgress, TimeSpan, string>? Noted;

    public string Check { get; } = check;

    public TimeSpan Limit { get; } = limit;

    /// <summary>A few words on the state (<c>open, 2 pings</c>).</summary>
    public string Status
    {
        get
        {
            lock (_gate)
            {
                return _status;
            }
        }

        set
        {
            lock (_gate)
            {
                _status = value;
            }
        }
    }

    /// <summary>Time since the upgrade; zero before it.</summary>
    public TimeSpan Elapsed
    {
        get
        {
            lock (_gate)
            {
                return _result is { } done ? done.Elapsed : _connectedAt is { } at ? time.GetElapsedTime(at) : TimeSpan.Zero;
            }
        }
    }

    /// <summary>The result, once the check is over.</summary>
    public CheckResult? Result
    {
        get
        {
            lock (_gate)
            {
                return _result;
            }
        }
    }

    /// <summary>The upgrade completed: the limit runs from now.</summary>
    public void Connected(long timestamp)
    {
        lock (_gate)
        {
            _connectedAt = timestamp;
        }
    }

    /// <summary>Something worth a line of its own.</summary>
    public void Note(string text) => Noted?.Invoke(this, Elapsed, text);

    /// <summary>The check is over.</summary>
    public void Finish(CheckResult result)
    {
        lock (_gate)
        {
            _result = result;
            _status = result.Verdict.ToString().ToLowerInvariant();
        }
    }
}
