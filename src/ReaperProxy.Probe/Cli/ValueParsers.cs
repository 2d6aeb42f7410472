using System.Globalization;
using System.Text.RegularExpressions;

namespace ReaperProxy.Probe.Cli;

/// <summary>Parses option values; each returns null and an error text people understand when the value is bad.</summary>
internal static partial class ValueParsers
{
    /// <summary>At most a day: the probe is for minutes, a longer value is a typo.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromDays(1);

    /// <summary><c>120s</c>, <c>500ms</c>, <c>2m</c>, <c>1.5s</c>, <c>1h</c>, or .NET's <c>00:02:00</c>; a bare number is refused (which unit?).</summary>
    public static TimeSpan? Duration(string text, out string? error)
    {
        error = null;
        var trimmed = text.Trim();
        var match = DurationPattern().Match(trimmed);
        TimeSpan? value = null;
        if (match.Success)
        {
            var number = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            value = match.Groups[2].Value.ToLowerInvariant() switch
            {
                "ms" => TimeSpan.FromMilliseconds(number),
                "s" => TimeSpan.FromSeconds(number),
                "m" or "min" => TimeSpan.FromMinutes(number),
                _ => TimeSpan.FromHours(number),
            };
        }
        else if (trimmed.Contains(':') && TimeSpan.TryParse(trimmed, CultureInfo.InvariantCulture, out var span))
        {
            value = span;
        }

        if (value is null)
        {
            error = double.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out _)
                ? $"'{text}' has no unit: write e.g. {trimmed}s or {trimmed}ms"
                : $"'{text}' is not a duration (examples: 120s, 500ms, 2m, 1.5s)";
            return null;
        }

        if (value <= TimeSpan.Zero || value > MaxDuration)
        {
            error = $"'{text}' must be more than 0 and at most 24h";
            return null;
        }

        return value;
    }

    /// <summary><c>65536</c>, <c>64k</c>, <c>64KiB</c>, <c>1m</c>, <c>1MiB</c> (k = 1024).</summary>
    public static int? Size(string text, out string? error)
    {
        error = null;
        var match = SizePattern().Match(text.Trim());
        if (!match.Success)
        {
            error = $"'{text}' is not a size in bytes (examples: 65536, 64k, 1m)";
            return null;
        }

        var number = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var unit = match.Groups[2].Value.ToLowerInvariant();
        var bytes = number * (unit.StartsWith('k') ? 1024 : unit.StartsWith('m') ? 1024 * 1024 : 1);
        if (bytes < 1 || bytes > 1024 * 1024 * 1024)
        {
            error = $"'{text}' must be between 1 byte and 1 GiB";
            return null;
        }

        return (int)bytes;
    }

    /// <summary><c>Name: value</c>, as curl's <c>-H</c>.</summary>
    public static KeyValuePair<string, string>? Header(string text, out string? error)
    {
        error = null;
        var colon = text.IndexOf(':');
        var name = colon > 0 ? text[..colon].Trim() : string.Empty;
        if (name.Length == 0 || !name.All(c => c > ' ' && c < 127 && !"()<>@,;:\\\"/[]?={}".Contains(c)))
        {
            error = $"'{text}' is not a header: write -H 'Name: value'";
            return null;
        }

        var value = text[(colon + 1)..].Trim();
        if (value.Any(c => c is '\r' or '\n'))
        {
            error = $"the value of header '{name}' contains a line break";
            return null;
        }

        return new(name, value);
    }

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex DurationPattern();

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SizePattern();
}
