using System.Globalization;

namespace ReaperProxy.Configuration;

/// <summary>
/// Durations in configuration: the .NET form (<c>00:00:15</c>, <c>00:00:00.500</c>) or the short form
/// (<c>15s</c>, <c>500ms</c>, <c>2m</c>, <c>1h</c>, <c>1.5s</c>).
/// </summary>
public static class Duration
{
    /// <summary>The largest duration accepted anywhere in the configuration.</summary>
    public static readonly TimeSpan Max = TimeSpan.FromDays(7);

    /// <summary>Parses either form; returns an error text (without the key path) on failure.</summary>
    public static bool TryParse(string? text, out TimeSpan value, out string? error)
    {
        value = default;
        error = null;
        var s = text?.Trim();
        if (string.IsNullOrEmpty(s))
        {
            error = "is empty; expected a duration such as '15s', '500ms', '2m' or '00:00:15'";
            return false;
        }

        if (s[0] == '-')
        {
            error = $"'{s}' must be a positive duration";
            return false;
        }

        if (s.Contains(':'))
        {
            if (!TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out value))
            {
                error = $"'{s}' is not a duration; expected the .NET form hh:mm:ss (e.g. '00:00:15') or a short form ('15s', '500ms', '2m')";
                return false;
            }
        }
        else if (!TryParseShort(s, out value))
        {
            error = char.IsDigit(s[^1])
                ? $"'{s}' has no unit; write '{s}s' (seconds), '{s}ms' or '{s}m', or use the .NET form hh:mm:ss"
                : $"'{s}' is not a duration; expected a short form ('15s', '500ms', '2m', '1h') or the .NET form hh:mm:ss";
            return false;
        }

        if (value <= TimeSpan.Zero)
        {
            error = $"'{s}' must be a positive duration";
            return false;
        }

        if (value > Max)
        {
            error = $"'{s}' is longer than the maximum of {Format(Max)}";
            return false;
        }

        return true;
    }

    /// <summary>Formats a duration in the short form, the way the docs write it.</summary>
    public static string Format(TimeSpan value)
    {
        if (value < TimeSpan.FromSeconds(1))
        {
            return value.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + "ms";
        }

        if (value.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            return value.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";
        }

        if (value.Ticks % TimeSpan.TicksPerHour == 0)
        {
            return (value.Ticks / TimeSpan.TicksPerHour).ToString(CultureInfo.InvariantCulture) + "h";
        }

        if (value.Ticks % TimeSpan.TicksPerMinute == 0)
        {
            return (value.Ticks / TimeSpan.TicksPerMinute).ToString(CultureInfo.InvariantCulture) + "m";
        }

        return value.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";
    }

    private static bool TryParseShort(string s, out TimeSpan value)
    {
        value = default;
        int unitStart = s.Length;
        while (unitStart > 0 && char.IsAsciiLetter(s[unitStart - 1]))
        {
            unitStart--;
        }

        var number = s.AsSpan(0, unitStart).Trim();
        var unit = s.AsSpan(unitStart);
        if (number.IsEmpty || unit.IsEmpty ||
            !double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount) ||
            double.IsNaN(amount) || double.IsInfinity(amount))
        {
            return false;
        }

        double? ms = unit switch
        {
            "ms" => amount,
            "s" => amount * 1_000,
            "m" => amount * 60_000,
            "h" => amount * 3_600_000,
            "d" => amount * 86_400_000,
            _ => null,
        };
        if (ms is not { } milliseconds || milliseconds > TimeSpan.MaxValue.TotalMilliseconds / 2)
        {
            return false;
        }

        value = TimeSpan.FromTicks((long)Math.Round(milliseconds * TimeSpan.TicksPerMillisecond));
        return true;
    }
}
