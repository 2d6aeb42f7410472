using System.Globalization;

namespace ReaperProxy.Probe.Checks;

/// <summary>Durations as people read them in the probe's sentences and table.</summary>
internal static class Durations
{
    /// <summary><c>2.31 s</c>, <c>45 ms</c>, <c>120 s</c>, <c>15 min</c>.</summary>
    public static string Format(TimeSpan value)
    {
        var seconds = value.TotalSeconds;
        return seconds switch
        {
            < 0.001 => "0 s",
            < 1 => Invariant($"{value.TotalMilliseconds:0.#} ms"),
            < 120 when Math.Abs(seconds - Math.Round(seconds)) < 0.0005 => Invariant($"{seconds:0} s"),
            < 10 => Invariant($"{seconds:0.0#} s"),
            < 120 when Math.Abs(seconds - Math.Round(seconds)) < 0.05 => Invariant($"{seconds:0} s"),
            < 120 => Invariant($"{seconds:0.0} s"),
            < 600 => Invariant($"{seconds:0} s"),
            _ when seconds % 60 == 0 => Invariant($"{seconds / 60:0} min"),
            _ => Invariant($"{seconds:0} s"),
        };
    }

    /// <summary>Milliseconds with two significant decimals at most: <c>0.42 ms</c>, <c>12 ms</c>.</summary>
    public static string FormatMs(double ms) => ms < 10 ? Invariant($"{ms:0.0#} ms") : Invariant($"{ms:0} ms");

    /// <summary>Bytes: <c>64 KiB</c>, <c>1.5 KiB</c>, <c>800 B</c>.</summary>
    public static string FormatBytes(long bytes) => bytes switch
    {
        >= 1024 * 1024 => Invariant($"{bytes / (1024.0 * 1024):0.#} MiB"),
        >= 1024 => Invariant($"{bytes / 1024.0:0.#} KiB"),
        _ => Invariant($"{bytes} B"),
    };

    /// <summary>A rate: <c>2 KiB/s</c>.</summary>
    public static string FormatRate(int bytesPerSecond) => FormatBytes(bytesPerSecond) + "/s";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
