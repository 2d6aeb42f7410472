using System.Text.Encodings.Web;
using System.Text.Json;
using ReaperProxy.Probe.Checks;
using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Output;

/// <summary>
/// The <c>--json</c> report, schema <c>reaperproxy-probe/v1</c> (docs/probe.md documents every field).
/// Written by hand, field by field, so that the order and the names are the contract and do not follow
/// C# renames; fields are added in a new minor version of the document, never renamed or removed.
/// </summary>
internal static class JsonReport
{
    public const string Schema = "reaperproxy-probe/v1";

    private static readonly JsonWriterOptions s_options = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A run that got to its checks.</summary>
    public static void Write(TextWriter output, RunReport report, int exitCode)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, s_options))
        {
            json.WriteStartObject();
            Header(json, report.Url, report.StartedAt, exitCode);
            json.WriteNumber("durationSeconds", Seconds(report.Duration));
            json.WriteBoolean("interrupted", report.Interrupted);
            json.WriteString("statusLine", report.StatusLine);
            json.WriteString("subprotocol", report.Subprotocol);
            json.WriteNull("error");
            json.WriteStartObject("summary");
            foreach (var verdict in Enum.GetValues<Verdict>())
            {
                json.WriteNumber(Name(verdict), report.Count(verdict));
            }

            json.WriteEndObject();
            json.WriteStartArray("checks");
            foreach (var result in report.Results)
            {
                Check(json, result);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        output.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
        output.Flush();
    }

    /// <summary>A run that could not connect at all: no checks, the error.</summary>
    public static void WriteConnectFailure(TextWriter output, Uri url, DateTimeOffset startedAt, TimeSpan duration, ConnectFailureException failure, int exitCode)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, s_options))
        {
            json.WriteStartObject();
            Header(json, url, startedAt, exitCode);
            json.WriteNumber("durationSeconds", Seconds(duration));
            json.WriteBoolean("interrupted", false);
            json.WriteNull("statusLine");
            json.WriteNull("subprotocol");
            json.WriteStartObject("error");
            json.WriteString("kind", SnakeCase(failure.Kind.ToString()));
            json.WriteString("message", failure.Message);
            if (failure.StatusCode is { } status)
            {
                json.WriteNumber("httpStatus", status);
            }
            else
            {
                json.WriteNull("httpStatus");
            }

            json.WriteEndObject();
            json.WriteStartObject("summary");
            foreach (var verdict in Enum.GetValues<Verdict>())
            {
                json.WriteNumber(Name(verdict), 0);
            }

            json.WriteEndObject();
            json.WriteStartArray("checks");
            json.WriteEndArray();
            json.WriteEndObject();
        }

        output.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
        output.Flush();
    }

    /// <summary><c>pass</c>, <c>fail</c>, <c>inconclusive</c>, <c>error</c>.</summary>
    public static string Name(Verdict verdict) => verdict.ToString().ToLowerInvariant();

    /// <summary><c>server_fin</c>, <c>still_open</c>, ...</summary>
    public static string Name(ConnectionEnd end) => SnakeCase(end.ToString());

    private static void Header(Utf8JsonWriter json, Uri url, DateTimeOffset startedAt, int exitCode)
    {
        json.WriteString("schema", Schema);
        json.WriteString("url", url.ToString());
        json.WriteString("startedAt", startedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        json.WriteNumber("exitCode", exitCode);
    }

    private static void Check(Utf8JsonWriter json, CheckResult result)
    {
        json.WriteStartObject();
        json.WriteString("name", result.Check);
        json.WriteString("verdict", Name(result.Verdict));
        json.WriteString("summary", result.Summary);
        json.WriteString("measured", result.Measured);
        json.WriteNumber("limitSeconds", Seconds(result.Limit));
        if (result.BoundOption is { } option && result.Bound is { } bound)
        {
            json.WriteStartObject("bound");
            json.WriteString("option", option);
            json.WriteNumber("seconds", Seconds(bound));
            json.WriteEndObject();
        }
        else
        {
            json.WriteNull("bound");
        }

        json.WriteNumber("elapsedSeconds", Seconds(result.Elapsed));
        json.WriteBoolean("interrupted", result.Interrupted);
        json.WriteString("error", result.Error);

        json.WriteStartObject("connection");
        json.WriteString("endedBy", Name(result.EndedBy));
        NumberOrNull(json, "endedAfterSeconds", result.EndedAfter is { } ended ? Seconds(ended) : null);
        Close(json, "closeReceived", result.CloseReceived);
        Close(json, "closeSent", result.CloseSent);
        json.WriteNumber("pingsReceived", result.PingTimes.Count);
        json.WriteStartArray("pingTimesSeconds");
        foreach (var at in result.PingTimes)
        {
            json.WriteNumberValue(Seconds(at));
        }

        json.WriteEndArray();
        json.WriteNumber("pongsSent", result.PongsSent);
        json.WriteNumber("dataBytesReceived", result.DataBytesReceived);
        json.WriteEndObject();

        json.WriteStartObject("details");
        foreach (var (key, value) in result.Details)
        {
            switch (value)
            {
                case null:
                    json.WriteNull(key);
                    break;
                case string text:
                    json.WriteString(key, text);
                    break;
                case bool flag:
                    json.WriteBoolean(key, flag);
                    break;
                case int number:
                    json.WriteNumber(key, number);
                    break;
                case long number:
                    json.WriteNumber(key, number);
                    break;
                case double number:
                    json.WriteNumber(key, Math.Round(number, 4));
                    break;
                default:
                    json.WriteString(key, Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture));
                    break;
            }
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void Close(Utf8JsonWriter json, string name, CloseSeen? close)
    {
        if (close is null)
        {
            json.WriteNull(name);
            return;
        }

        json.WriteStartObject(name);
        json.WriteNumber("code", close.Code);
        json.WriteString("reason", close.Reason);
        json.WriteNumber("afterSeconds", Seconds(close.At));
        json.WriteEndObject();
    }

    private static void NumberOrNull(Utf8JsonWriter json, string name, double? value)
    {
        if (value is { } number)
        {
            json.WriteNumber(name, number);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static double Seconds(TimeSpan value) => Math.Round(value.TotalSeconds, 4);

    private static string SnakeCase(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : string.Empty) + char.ToLowerInvariant(c) : c.ToString()));
}
